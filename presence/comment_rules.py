"""Who may do what with comment threads: pure decisions, one function.

| action | who |
|---|---|
| read threads and comments | every role (viewer and up) |
| create a thread, reply, react (and take back one's own reaction), follow or mute a thread | commenter, editor, owner |
| edit a comment | its author (commenter and up) |
| delete a comment | its author (commenter and up), the room's owner |
| resolve, reopen, change a thread's metadata | editor, owner, the thread's creator (commenter and up) |
| delete a thread | the room's owner; its creator while every comment in it is theirs |

`refusal(...)` answers with the reason an action is refused (None: allowed); the
server turns it into a 403 and an audit event.
"""

from __future__ import annotations

from enum import StrEnum

from ysync.presence.comments import Comment, Thread
from ysync.rooms.hooks import Role


class Action(StrEnum):
    READ = "read"
    CREATE_THREAD = "create a thread"
    REPLY = "reply"
    REACT = "react"
    SUBSCRIBE = "follow or mute a thread"
    EDIT_COMMENT = "edit this comment"
    DELETE_COMMENT = "delete this comment"
    RESOLVE = "resolve or reopen this thread"
    EDIT_THREAD = "change this thread's metadata"
    DELETE_THREAD = "delete this thread"


_COMMENTING = frozenset({Action.CREATE_THREAD, Action.REPLY, Action.REACT, Action.SUBSCRIBE})


def refusal(
    action: Action,
    role: Role,
    user: str,
    thread: Thread | None = None,
    comment: Comment | None = None,
) -> str | None:
    """Why `user` (with `role` in the room) may not do `action`; None: they may."""
    if action is Action.READ:
        return None
    if role.rank < Role.COMMENTER.rank:
        return f"a {role.value} may not {action.value}: commenter or more needed"
    if action in _COMMENTING:
        return None
    if action is Action.EDIT_COMMENT:
        return (
            None if comment is not None and comment.author == user else _only("its author", action)
        )
    if action is Action.DELETE_COMMENT:
        if role is Role.OWNER or (comment is not None and comment.author == user):
            return None
        return _only("its author or the room's owner", action)
    if action in (Action.RESOLVE, Action.EDIT_THREAD):
        if role.rank >= Role.EDITOR.rank or (thread is not None and thread.created_by == user):
            return None
        return _only("an editor, an owner or the thread's creator", action)
    # DELETE_THREAD
    if role is Role.OWNER:
        return None
    if (
        thread is not None
        and thread.created_by == user
        and all(c.author == user for c in thread.comments)
    ):
        return None
    return _only("the room's owner, or its creator while all its comments are theirs", action)


def _only(who: str, action: Action) -> str:
    return f"only {who} may {action.value}"
