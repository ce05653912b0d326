"""The comments HTTP API in-process over real sockets: the permissions matrix, bad input,
mentions and notifications, events. (Anchors against real JS clients, clusters and restarts
have their own modules.)"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from ysync.presence.events import Event
from ysync.server import create_app
from ysync.server.settings import Settings

from support import authtokens as tk
from support.threaded_server import ThreadedServer

ROOM = "team/board"
PATH = "/api/rooms/team%2Fboard/threads"
ROLES = ("viewer", "commenter", "editor", "owner")


def body(text: str, *mentions: str) -> dict[str, Any]:
    children: list[dict[str, Any]] = [{"text": text}]
    children += [{"type": "mention", "id": user} for user in mentions]
    return {"version": 1, "content": [{"type": "paragraph", "children": children}]}


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    settings = Settings(
        store="memory://",
        demo=False,
        auth="jwt",
        jwt_secret=tk.SECRET,
        jwt_audience=tk.AUDIENCE,
        jwt_issuer=tk.ISSUER,
        cors_origins="https://app.example",
    )
    with ThreadedServer(create_app(settings)) as running:
        yield running


@pytest.fixture(scope="module")
def events(server: ThreadedServer) -> list[Event]:
    seen: list[Event] = []
    server.call(lambda: server.app.state.ysync.events.sinks.append(seen.append))
    return seen


def api(
    server: ThreadedServer, user: str | None, role: str = "commenter", room: str = ROOM
) -> httpx.Client:
    headers = (
        {}
        if user is None
        else {"Authorization": f"Bearer {tk.token(sub=user, rooms={room: role})}"}
    )
    return httpx.Client(base_url=server.http_url, headers=headers, timeout=10)


def start(client: httpx.Client, text: str = "first", **fields: Any) -> dict[str, Any]:
    response = client.post(PATH, json={"body": body(text), **fields})
    assert response.status_code == 201, response.text
    thread: dict[str, Any] = response.json()
    return thread


# What each role gets from each endpoint, on a thread and comment made by someone else.
MATRIX: dict[str, tuple[int, int, int, int]] = {  # viewer, commenter, editor, owner
    "list threads": (200, 200, 200, 200),
    "get thread": (200, 200, 200, 200),
    "create thread": (403, 201, 201, 201),
    "reply": (403, 201, 201, 201),
    "edit another's comment": (403, 403, 403, 403),
    "delete another's comment": (403, 403, 403, 204),
    "resolve": (403, 403, 200, 200),
    "change metadata": (403, 403, 200, 200),
    "react": (403, 200, 200, 200),
    "take back a reaction": (403, 200, 200, 200),
    "follow": (403, 200, 200, 200),
    "delete the thread": (403, 403, 403, 204),
    "my notifications": (200, 200, 200, 200),
    "read all notifications": (200, 200, 200, 200),
}


def attempt(client: httpx.Client, what: str, thread: dict[str, Any]) -> httpx.Response:
    one = f"{PATH}/{thread['id']}"
    comment = f"{one}/comments/{thread['comments'][0]['id']}"
    calls: dict[str, Callable[[], httpx.Response]] = {
        "list threads": lambda: client.get(PATH),
        "get thread": lambda: client.get(one),
        "create thread": lambda: client.post(PATH, json={"body": body("mine")}),
        "reply": lambda: client.post(one + "/comments", json={"body": body("re")}),
        "edit another's comment": lambda: client.patch(comment, json={"body": body("hijack")}),
        "delete another's comment": lambda: client.delete(comment),
        "resolve": lambda: client.patch(one, json={"resolved": True}),
        "change metadata": lambda: client.patch(one, json={"metadata": {"color": "red"}}),
        "react": lambda: client.post(comment + "/reactions", json={"emoji": "👍"}),
        "take back a reaction": lambda: client.request(
            "DELETE", comment + "/reactions", json={"emoji": "👍"}
        ),
        "follow": lambda: client.put(one + "/subscription", json={"state": "subscribed"}),
        "delete the thread": lambda: client.delete(one),
        "my notifications": lambda: client.get("/api/users/me/notifications"),
        "read all notifications": lambda: client.post("/api/users/me/notifications/read-all"),
    }
    return calls[what]()


@pytest.mark.parametrize("what", list(MATRIX))
def test_permissions_matrix(
    server: ThreadedServer, what: str, caplog: pytest.LogCaptureFixture
) -> None:
    with api(server, "author") as author:
        for role, expected in zip(ROLES, MATRIX[what], strict=True):
            thread = start(author, f"by the author, for {role}")
            caplog.clear()
            with (
                caplog.at_level(logging.WARNING, logger="ysync.audit"),
                api(server, f"{role}-user", role) as client,
            ):
                response = attempt(client, what, thread)
            assert response.status_code == expected, f"{role} {what}: {response.text}"
            if expected == 403:
                assert response.json()["code"] == "forbidden" and response.json()["error"]
                denied = [
                    r for r in caplog.records if getattr(r, "action", None) == "access_denied"
                ]
                assert len(denied) == 1 and denied[0].subject == f"{role}-user"
            with api(server, None) as nobody:
                assert attempt(nobody, what, thread).status_code == 401


def test_authors_edit_and_delete_their_own_comments_and_creators_resolve(
    server: ThreadedServer,
) -> None:
    with api(server, "cid") as cid:
        thread = start(cid, "draft", metadata={"x": 1})
        comment = f"{PATH}/{thread['id']}/comments/{thread['comments'][0]['id']}"
        edited = cid.patch(comment, json={"body": body("final", "dan")})
        assert edited.status_code == 200
        assert edited.json()["text"] == "final@dan" and edited.json()["editedAt"]
        assert edited.json()["mentions"] == ["dan"]
        resolved = cid.patch(
            f"{PATH}/{thread['id']}", json={"resolved": True, "metadata": {"x": None}}
        )
        assert resolved.json()["resolved"] and resolved.json()["resolvedBy"] == "cid"
        assert resolved.json()["metadata"] == {}
        assert cid.delete(comment).status_code == 204
        after = cid.get(f"{PATH}/{thread['id']}").json()
        assert after["comments"][0]["body"] is None and after["comments"][0]["deletedAt"]
        assert cid.delete(comment).status_code == 404  # already gone
        assert cid.delete(f"{PATH}/{thread['id']}").status_code == 204  # all its comments are cid's
        assert cid.get(f"{PATH}/{thread['id']}").status_code == 404


@pytest.mark.parametrize(
    ("payload", "status", "names"),
    [
        (
            {"body": {"version": 1, "content": [{"type": "quote", "children": []}]}},
            400,
            "body.content[0]",
        ),
        ({"body": body("x" * 17_000)}, 413, "body is"),
        ({"body": {"version": 1, "content": [[[[[[[[[1]]]]]]]]]}}, 400, "deeper"),
        ({"body": body("ok"), "metadata": {"pad": "x" * 5000}}, 413, "metadata"),
        ({"body": body("ok"), "metadata": {"pin": {"x": 1}}}, 400, "metadata.pin"),
        (
            {
                "body": body("ok"),
                "anchor": {"kind": "range", "type": "t", "start": "AAAA", "end": "%%"},
            },
            400,
            "anchor.end",
        ),
        ({"body": body("ok"), "author": "someone-else"}, 400, "author"),
        ([1, 2], 400, "object"),
    ],
)
def test_bad_threads_are_refused_naming_the_problem_and_store_nothing(
    server: ThreadedServer, payload: Any, status: int, names: str
) -> None:
    with api(server, "bad", room="bad-input") as client:
        path = "/api/rooms/bad-input/threads"
        response = client.post(path, json=payload)
        assert response.status_code == status, response.text
        assert names in response.json()["error"] and response.json()["code"]
        assert client.get(path).json()["threads"] == []


def test_bad_changes_are_refused_and_change_nothing(server: ThreadedServer) -> None:
    with api(server, "bea", "editor", room="bad-change") as client:
        path = "/api/rooms/bad-change/threads"
        thread = client.post(path, json={"body": body("x")}).json()
        one = f"{path}/{thread['id']}"
        comment = f"{one}/comments/{thread['comments'][0]['id']}"
        assert client.patch(one, json={"resolved": "yes"}).status_code == 400
        assert client.patch(one, json={"resolved": True, "metadata": {"k": [1]}}).status_code == 400
        assert client.post(comment + "/reactions", json={"emoji": "x" * 40}).status_code == 400
        assert client.post(one + "/comments", content=b"{not json").status_code == 400
        assert client.get(path + "/th_nope").status_code == 404
        assert client.post(path + "/th_nope/comments", json={"body": body("x")}).status_code == 404
        assert client.patch(one + "/comments/cm_nope", json={"body": body("x")}).status_code == 404
        assert client.get(path, params={"cursor": "garbage"}).status_code == 400
        assert client.get(path, params={"resolved": "maybe"}).status_code == 400
        assert client.get(one).json() == thread


def test_lists_filter_and_page(server: ThreadedServer) -> None:
    with api(server, "lee", "editor", room="lists") as client:
        path = "/api/rooms/lists/threads"
        made = [
            client.post(
                path,
                json={
                    "body": body(f"t{i}", *(["ann"] if i % 2 else [])),
                    "metadata": {"i": i, "odd": bool(i % 2)},
                },
            ).json()
            for i in range(5)
        ]
        client.patch(f"{path}/{made[0]['id']}", json={"resolved": True})
        newest_first = [t["id"] for t in reversed(made)]
        pages, cursor = [], None
        for _ in range(5):
            page = client.get(
                path, params={"limit": 2, **({"cursor": cursor} if cursor else {})}
            ).json()
            pages.append([t["id"] for t in page["threads"]])
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:]]

        def ids(**params: Any) -> list[str]:
            return [t["id"] for t in client.get(path, params=params).json()["threads"]]

        assert ids(resolved="true") == [made[0]["id"]]
        assert ids(mentions="ann") == [made[3]["id"], made[1]["id"]]
        assert ids(**{"metadata.odd": "true"}) == [made[3]["id"], made[1]["id"]]
        assert ids(**{"metadata.i": "2"}) == [made[2]["id"]]
        assert ids(since=made[0]["updatedAt"]) == [t["id"] for t in reversed(made)][:5]
        assert ids(since="2999-01-01T00:00:00Z") == []


def test_a_mention_notifies_only_the_mentioned_reader(
    server: ThreadedServer, events: list[Event]
) -> None:
    room, path = "mentions", "/api/rooms/mentions/threads"
    with api(server, "ada", room=room) as ada, api(server, "bob", "viewer", room=room) as bob:
        assert bob.get(path).status_code == 200  # bob has read the room: ysync knows he may
        with api(server, "eve", "viewer", room="elsewhere") as eve:
            thread = ada.post(path, json={"body": body("look ", "bob", "eve")}).json()
            mine = bob.get("/api/users/me/notifications").json()
            assert [(n["kind"], n["threadId"], n["author"]) for n in mine["notifications"]] == [
                ("mention", thread["id"], "ada")
            ]
            assert mine["notifications"][0]["text"] == "look @bob@eve" and mine["unread"] == 1
            assert eve.get("/api/users/me/notifications").json()["notifications"] == []
            assert ada.get("/api/users/me/notifications").json()["notifications"] == []
        mentions = [e for e in events if e.type == "mention.created" and e.room == room]
        assert [e.data["userId"] for e in mentions] == ["bob"]
        # An edit that keeps the mention does not notify again; a reply notifies the creator.
        comment = f"{path}/{thread['id']}/comments/{thread['comments'][0]['id']}"
        ada.patch(comment, json={"body": body("look again ", "bob")})
        with api(server, "bob", "commenter", room=room) as bob_commenting:
            bob_commenting.post(f"{path}/{thread['id']}/comments", json={"body": body("seen")})
        assert len(bob.get("/api/users/me/notifications").json()["notifications"]) == 1
        (reply,) = ada.get("/api/users/me/notifications").json()["notifications"]
        assert reply["kind"] == "reply"
        note = mine["notifications"][0]["id"]
        assert ada.post(f"/api/users/me/notifications/{note}/read").status_code == 404  # bob's
        assert bob.post(f"/api/users/me/notifications/{note}/read").json() == {
            "id": note,
            "read": True,
        }
        assert bob.get("/api/users/me/notifications").json()["unread"] == 0
        assert ada.post("/api/users/me/notifications/read-all").json() == {"read": 1}


def test_muting_a_thread_stops_reply_notifications(server: ThreadedServer) -> None:
    room, path = "muting", "/api/rooms/muting/threads"
    with api(server, "mo", room=room) as mo, api(server, "ned", room=room) as ned:
        thread = mo.post(path, json={"body": body("hello")}).json()
        assert (
            mo.put(f"{path}/{thread['id']}/subscription", json={"state": "muted"}).json()["state"]
            == "muted"
        )
        ned.post(f"{path}/{thread['id']}/comments", json={"body": body("hi")})
        assert mo.get("/api/users/me/notifications").json()["notifications"] == []
        assert (
            mo.put(f"{path}/{thread['id']}/subscription", json={"state": "loud"}).status_code == 400
        )


def test_every_change_is_an_event(server: ThreadedServer, events: list[Event]) -> None:
    room, path = "live", "/api/rooms/live/threads"
    with api(server, "liv", "owner", room=room) as client:
        thread = client.post(path, json={"body": body("a")}).json()
        one = f"{path}/{thread['id']}"
        comment = client.post(one + "/comments", json={"body": body("b")}).json()
        at = f"{one}/comments/{comment['id']}"
        client.patch(at, json={"body": body("c")})
        client.post(at + "/reactions", json={"emoji": "🎉"})
        client.request("DELETE", at + "/reactions", params={"emoji": "🎉"})
        client.patch(one, json={"resolved": True})
        client.patch(one, json={"resolved": False})
        client.delete(at)
    kinds = [e.type for e in events if e.room == room]
    assert kinds == [
        "thread.created",
        "comment.created",
        "comment.edited",
        "reaction.added",
        "reaction.removed",
        "thread.resolved",
        "thread.reopened",
        "comment.deleted",
    ]


def test_cors_lets_the_configured_origin_call_with_its_token(server: ThreadedServer) -> None:
    preflight = httpx.options(
        server.http_url + PATH,
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    other = httpx.options(
        server.http_url + PATH,
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in other.headers
