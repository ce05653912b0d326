"""The comment model: bodies (schema, size, depth), text, mentions, metadata, emoji,
the permission rules and who gets notified. Pure functions, no server."""

from __future__ import annotations

from typing import Any

import pytest

from ysync.presence import comment_rules
from ysync.presence.comment_rules import Action
from ysync.presence.comments import (
    CommentError,
    Thread,
    check_body,
    check_emoji,
    check_metadata,
    decode_cursor,
    encode_cursor,
    iso,
    mentions_of,
    merged_metadata,
    new_comment,
    parse_time,
    plain_text,
)
from ysync.presence.notifications import Kind, recipients
from ysync.rooms.hooks import Role

LIVEBLOCKS = {
    "version": 1,
    "content": [
        {
            "type": "paragraph",
            "children": [
                {"text": "see "},
                {"type": "mention", "id": "user-ada"},
                {"text": "!", "bold": True},
            ],
        },
        {
            "type": "paragraph",
            "children": [{"type": "link", "url": "https://x.test", "text": "here"}],
        },
    ],
}


def test_a_liveblocks_body_is_accepted_with_its_text_and_mentions() -> None:
    assert check_body(LIVEBLOCKS) == LIVEBLOCKS
    assert plain_text(LIVEBLOCKS) == "see @user-ada!\nhere"
    assert mentions_of(LIVEBLOCKS) == ("user-ada",)


def paragraph(*children: Any) -> dict[str, Any]:
    return {"version": 1, "content": [{"type": "paragraph", "children": list(children)}]}


@pytest.mark.parametrize(
    ("body", "code", "names"),
    [
        (None, "body_missing", "body"),
        ({"version": 2, "content": []}, "body_invalid", "body"),
        (paragraph({"text": "x", "shout": True}), "body_invalid", "body.content[0].children[0]"),
        (paragraph({"type": "mention"}), "body_invalid", "body.content[0].children[0]"),
        (paragraph({"text": "   "}), "body_empty", "body"),
        (paragraph({"text": "x" * 20_000}), "body_too_large", "body"),
        ({"version": 1, "content": [[[[[[[["deep"]]]]]]]]}, "body_too_deep", "body"),
    ],
)
def test_bad_bodies_are_refused_naming_the_problem(body: Any, code: str, names: str) -> None:
    with pytest.raises(CommentError) as refused:
        check_body(body)
    assert refused.value.code == code
    assert refused.value.message.startswith(names)
    assert refused.value.too_large == (code == "body_too_large")


def test_metadata_is_flat_small_and_merged_with_null_removing() -> None:
    assert check_metadata({"x": 120, "color": "red", "pinned": True}) == {
        "x": 120,
        "color": "red",
        "pinned": True,
    }
    for bad in ({"nested": {"a": 1}}, {"n": float("nan")}, {"": 1}, [1], {"k": None}):
        with pytest.raises(CommentError):
            check_metadata(bad)
    with pytest.raises(CommentError) as big:
        check_metadata({"k": "x" * 5000})
    assert big.value.too_large
    assert merged_metadata({"x": 1, "y": 2}, check_metadata({"x": None, "z": 3}, patch=True)) == {
        "y": 2,
        "z": 3,
    }


def test_emoji_are_short_strings_without_spaces() -> None:
    assert check_emoji("👍🏽") == "👍🏽"
    for bad in ("", " ", "a b", "x" * 33, 5, "\x00"):
        with pytest.raises(CommentError):
            check_emoji(bad)


def test_times_and_cursors() -> None:
    assert iso(0.5) == "1970-01-01T00:00:00.500Z"
    assert parse_time("1970-01-01T00:01:00Z", "since") == 60.0
    assert parse_time("90", "since") == 90.0
    with pytest.raises(CommentError):
        parse_time("yesterday", "since")
    assert decode_cursor(encode_cursor(12.5, "th_x")) == (12.5, "th_x")
    for bad in ("!!", "bm90IGpzb24", encode_cursor(1.0, "x")[:-2]):
        with pytest.raises(CommentError):
            decode_cursor(bad)


def thread_by(creator: str, *authors: str) -> Thread:
    comments = tuple(new_comment("th_1", a, paragraph({"text": "x"}), 1.0) for a in authors)
    return Thread("th_1", "r", {"kind": "none"}, {}, creator, 1.0, 1.0, comments=comments)


def test_the_permission_rules() -> None:
    mine = thread_by("ada", "ada")
    shared = thread_by("ada", "ada", "bob")
    comment = mine.comments[0]

    def allowed(action: Action, role: Role, user: str, thread: Thread = mine) -> bool:
        return comment_rules.refusal(action, role, user, thread, comment) is None

    assert allowed(Action.READ, Role.VIEWER, "eve")
    assert not allowed(Action.REPLY, Role.VIEWER, "eve")
    assert not allowed(Action.EDIT_COMMENT, Role.VIEWER, "ada")  # a viewer now
    assert allowed(Action.REPLY, Role.COMMENTER, "eve")
    assert allowed(Action.EDIT_COMMENT, Role.COMMENTER, "ada")
    assert not allowed(Action.EDIT_COMMENT, Role.OWNER, "own")
    assert allowed(Action.DELETE_COMMENT, Role.OWNER, "own")
    assert not allowed(Action.DELETE_COMMENT, Role.EDITOR, "ed")
    assert allowed(Action.RESOLVE, Role.EDITOR, "ed")
    assert allowed(Action.RESOLVE, Role.COMMENTER, "ada")
    assert not allowed(Action.RESOLVE, Role.COMMENTER, "eve")
    assert allowed(Action.DELETE_THREAD, Role.COMMENTER, "ada")
    assert not allowed(Action.DELETE_THREAD, Role.COMMENTER, "ada", shared)
    assert allowed(Action.DELETE_THREAD, Role.OWNER, "own", shared)
    reason = comment_rules.refusal(Action.EDIT_COMMENT, Role.OWNER, "own", mine, comment)
    assert reason is not None and "author" in reason


def test_who_is_notified() -> None:
    reply = new_comment("th_1", "bob", paragraph({"type": "mention", "id": "cy"}, {"text": "!"}), 1)
    assert recipients(reply, {"ada", "bob", "cy"}) == {"cy": Kind.MENTION, "ada": Kind.REPLY}
    assert recipients(reply, {"ada"}, mentioned_before=["cy"], replying=False) == {}
    own = new_comment("th_1", "bob", paragraph({"type": "mention", "id": "bob"}), 1)
    assert recipients(own, {"bob"}) == {}
