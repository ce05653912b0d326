"""Authentication and permissions: JWT verification, roles from claims, refusals over sockets."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from pycrdt import Text
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from ysync.clients import connect, room_url
from ysync.rooms import codec
from ysync.rooms.extensions import Extensions, from_hooks
from ysync.rooms.hooks import ConnectionRequest, Hooks, Identity, Refused, Role
from ysync.server.auth import (
    InvalidToken,
    JwtAuthenticator,
    JwtVerifier,
    auth_extensions,
)
from ysync.server.permissions import (
    ClaimsError,
    NoAccess,
    glob_match,
    identity_from_claims,
    parse_grants,
    role_for,
)
from ysync.server.settings import Settings

from support import authtokens as tk
from support.aio import run
from support.servers import YsyncProcess


async def until_closed(
    url: str,
    room: str,
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    send: list[bytes] = (),  # type: ignore[assignment]
    timeout: float = 10.0,
) -> tuple[int | None, str | None, list[bytes]]:
    """Connect, send `send`, and collect every frame the server sends until it closes."""
    ws = await ws_connect(
        room_url(url, room, params), additional_headers=headers, compression=None, proxy=None
    )
    for frame in send:
        await ws.send(frame)
    frames: list[bytes] = []
    async with asyncio.timeout(timeout):
        try:
            while True:
                frames.append(await ws.recv())  # type: ignore[arg-type]
        except ConnectionClosed:
            pass
    return ws.close_code, ws.close_reason, frames


def auth_message(token: str) -> bytes:
    """The y-websocket auth message carrying a token (`varUint(2) varUint(0) varString`)."""
    return bytes((codec.MESSAGE_AUTH, 0)) + codec.var_bytes(token.encode())


@pytest.fixture(scope="module")
def jwt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YsyncProcess]:
    log = tmp_path_factory.mktemp("jwt") / "ysync.log"
    with YsyncProcess(*tk.JWT_FLAGS, log_path=log) as process:
        yield process


def audit_events(server: YsyncProcess) -> list[dict[str, Any]]:
    assert server.log_path is not None
    events = [json.loads(line) for line in server.log_path.read_text().splitlines()]
    return [event for event in events if event.get("audit") is True]


# -- permissions: claims -> role -------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("*", "anything/at/all", True),
        ("team-a/*", "team-a/x/y", True),
        ("team-a/*", "team-b/x", False),
        ("team-a/*", "team-a", False),
        ("doc-?", "doc-1", True),
        ("doc-?", "doc-12", False),
        ("*.md", "notes/readme.md", True),
        ("a*b*c", "aXXbYYc", True),
        ("a*b*c", "aXXcYYb", False),
        ("exact", "exact", True),
        ("[x]", "[x]", True),  # brackets are literal, not character classes
        ("*a" * 30 + "b", "a" * 512, False),  # no catastrophic backtracking
    ],
)
def test_glob_patterns(pattern: str, name: str, matches: bool) -> None:
    started = time.perf_counter()
    assert glob_match(pattern, name) is matches
    assert time.perf_counter() - started < 0.5


def test_most_specific_grant_wins() -> None:
    grants = parse_grants(
        {
            "*": "viewer",
            "team-a/*": "editor",
            "team-a/specs/*": "owner",
            "public/readme": "commenter",
            "public/*": "editor",
            "x*": "owner",
            "*y": "viewer",
        }
    )
    assert role_for(grants, "random") is Role.VIEWER
    assert role_for(grants, "team-a/notes") is Role.EDITOR
    assert role_for(grants, "team-a/specs/v1") is Role.OWNER  # more literal characters
    assert role_for(grants, "public/readme") is Role.COMMENTER  # exact beats any pattern
    assert role_for(grants, "public/other") is Role.EDITOR
    assert role_for(grants, "xy") is Role.VIEWER  # tie (1 literal each): least powerful
    assert role_for(parse_grants({"team-a/*": "editor"}), "team-b/x") is None


def test_claims_give_an_identity_or_a_refusal() -> None:
    identity = identity_from_claims(
        {"sub": "ada", "name": "Ada", "rooms": {"r": "viewer"}}, "r", expires_at=123.0
    )
    assert identity == Identity(user_id="ada", name="Ada", role=Role.VIEWER, expires_at=123.0)
    assert not identity.can_edit and not identity.can_comment and not identity.can_manage
    with pytest.raises(NoAccess):
        identity_from_claims({"sub": "ada", "rooms": {"other": "owner"}}, "r", expires_at=None)
    with pytest.raises(NoAccess):
        identity_from_claims({"sub": "ada"}, "r", expires_at=None)  # no rooms claim: nothing
    for bad in (
        {"rooms": {"*": "editor"}},
        {"sub": "", "rooms": {"*": "editor"}},
        {"sub": 7, "rooms": {"*": "editor"}},
        {"sub": "ada", "rooms": ["*"]},
        {"sub": "ada", "rooms": {"*": "superuser"}},
        {"sub": "ada", "rooms": {"": "editor"}},
        {"sub": "ada", "name": 5, "rooms": {"*": "editor"}},
    ):
        with pytest.raises(ClaimsError):
            identity_from_claims(bad, "r", expires_at=None)


def test_roles_and_their_rights() -> None:
    rights = {
        role: (Identity(role=role).can_edit, Identity(role=role).can_comment) for role in Role
    }
    assert rights == {
        Role.OWNER: (True, True),
        Role.EDITOR: (True, True),
        Role.COMMENTER: (False, True),
        Role.VIEWER: (False, False),
    }
    assert [r for r in Role if Identity(role=r).can_manage] == [Role.OWNER]
    assert Identity().can_edit  # auth off: an anonymous editor
    assert not Identity(role=Role.OWNER, read_only=True).can_edit


def test_token_comes_from_header_then_query_then_auth_message() -> None:
    both = ConnectionRequest(
        "r", query={"token": "q"}, headers={"authorization": "Bearer h"}, auth_message="m"
    )
    assert both.token == "h"
    assert ConnectionRequest("r", query={"token": "q"}, auth_message="m").token == "q"
    assert ConnectionRequest("r", auth_message="m").token == "m"
    assert ConnectionRequest("r", headers={"authorization": "Basic xyz"}).token is None
    assert ConnectionRequest("r").token is None


# -- verifying tokens --------------------------------------------------------------------


def hs_verifier(**kwargs: Any) -> JwtVerifier:
    return JwtVerifier(secret=tk.SECRET, audience=tk.AUDIENCE, issuer=tk.ISSUER, leeway=0, **kwargs)


def tampered(token: str) -> str:
    """The token with its claims swapped for an owner grant everywhere, signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["rooms"] = {"*": "owner"}
    forged = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    return f"{header}.{forged}.{signature}"


def invalid_tokens() -> dict[str, tuple[str, str]]:
    """name -> (token, what the refusal reason says)."""
    now = int(time.time())
    rsa = tk.rsa_key()
    return {
        "bad signature": (tk.hs256(tk.claims(), tk.OTHER_SECRET), "signature"),
        "alg none": (tk.unsigned(tk.claims()), "algorithm"),
        "alg none, upper case": (
            tk.unsigned(tk.claims()).replace(
                jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode(),
                jwt.utils.base64url_encode(b'{"alg":"NONE","typ":"JWT"}').decode(),
            ),
            "algorithm",
        ),
        "RS256 where HS256 is expected": (
            jwt.encode(tk.claims(), rsa, algorithm="RS256"),
            "algorithm",
        ),
        "expired": (tk.hs256(tk.claims(ttl=-60)), "expired"),
        "not yet valid": (tk.hs256(tk.claims(nbf=now + 600)), "not valid yet"),
        "wrong audience": (tk.hs256({**tk.claims(), "aud": "someone-else"}), "audience"),
        "no audience": (tk.hs256({k: v for k, v in tk.claims().items() if k != "aud"}), "aud"),
        "wrong issuer": (tk.hs256({**tk.claims(), "iss": "https://evil.test"}), "issuer"),
        "missing sub": (tk.hs256(tk.claims(sub=None)), "'sub'"),
        "missing exp": (
            tk.hs256({k: v for k, v in tk.claims().items() if k != "exp"}),
            "'exp'",
        ),
        "malformed": ("not-a-jwt", "malformed"),
        "malformed, three parts": ("a.b.c", "malformed"),
        "tampered payload": (tampered(tk.token("ada", {"own/*": "viewer"})), "signature"),
        "bad rooms claim": (tk.token(rooms=["*"]), "rooms"),
        "unknown role": (tk.token(rooms={"*": "admin"}), "rooms"),
        "too long": ("x" * 20_000, "too long"),
    }


@pytest.mark.parametrize("name", list(invalid_tokens()))
def test_invalid_tokens_are_refused_with_4401(name: str) -> None:
    token, reason_part = invalid_tokens()[name]
    authenticator = JwtAuthenticator(hs_verifier())
    with pytest.raises(Refused) as refused:
        run(authenticator.authenticate(ConnectionRequest("room", query={"token": token})))
    assert refused.value.code == 4401
    assert reason_part in refused.value.reason


def test_valid_hs256_token_gives_the_role_and_expiry() -> None:
    authenticator = JwtAuthenticator(hs_verifier())
    token = tk.token("ada", {"docs/*": "commenter"}, name="Ada Lovelace")
    identity = run(authenticator.authenticate(ConnectionRequest("docs/1", query={"token": token})))
    assert (identity.user_id, identity.name, identity.role) == ("ada", "Ada Lovelace", "commenter")
    assert identity.expires_at == pytest.approx(time.time() + 300, abs=5)
    with pytest.raises(Refused) as refused:
        run(authenticator.authenticate(ConnectionRequest("other", query={"token": token})))
    assert refused.value.code == 4403


def test_leeway_accepts_a_token_expired_within_it_and_extends_its_expiry() -> None:
    verifier = JwtVerifier(secret=tk.SECRET, audience=tk.AUDIENCE, leeway=60)
    token = tk.token(ttl=-30)
    identity = run(
        JwtAuthenticator(verifier).authenticate(ConnectionRequest("r", query={"token": token}))
    )
    assert identity.expires_at == pytest.approx(time.time() + 30, abs=5)


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_public_key_file_verifies_rs256_and_es256(kind: str, tmp_path: Path) -> None:
    key = tk.rsa_key() if kind == "rsa" else tk.ec_key()
    algorithm = "RS256" if kind == "rsa" else "ES256"
    pem = tk.write_public_pem(key, tmp_path / "key.pem")
    verifier = JwtVerifier(public_key_file=str(pem), audience=tk.AUDIENCE, leeway=0)
    assert verifier.verify(jwt.encode(tk.claims(), key, algorithm=algorithm))["sub"] == "ada"
    other = tk.rsa_key() if kind == "rsa" else tk.ec_key()
    with pytest.raises(InvalidToken, match="signature"):
        verifier.verify(jwt.encode(tk.claims(), other, algorithm=algorithm))
    # Algorithm confusion: the public key's bytes as an HS256 secret must not verify.
    confused = tk.forged_hs256(tk.claims(), pem.read_bytes())
    with pytest.raises(InvalidToken, match="algorithm"):
        verifier.verify(confused)
    with pytest.raises(InvalidToken, match="algorithm"):
        verifier.verify(tk.unsigned(tk.claims()))


def test_jwks_file_picks_keys_by_kid_and_is_reread_for_new_kids(tmp_path: Path) -> None:
    rsa, ec = tk.rsa_key(), tk.ec_key()
    path = tk.write_jwks({"k1": rsa}, tmp_path / "jwks.json")
    verifier = JwtVerifier(jwks_file=str(path), audience=tk.AUDIENCE, leeway=0)
    assert verifier.verify(jwt.encode(tk.claims(), rsa, "RS256", headers={"kid": "k1"}))
    with pytest.raises(InvalidToken, match="unknown key"):
        verifier.verify(jwt.encode(tk.claims(), ec, "ES256", headers={"kid": "k2"}))
    # Key rotation: the file gains k2; a token naming it makes the verifier re-read it.
    tk.write_jwks({"k1": rsa, "k2": ec}, path)
    later = time.time() + 5
    os.utime(path, (later, later))
    verifier._jwks_checked = 0.0  # past the once-a-second re-read throttle
    assert verifier.verify(jwt.encode(tk.claims(), ec, "ES256", headers={"kid": "k2"}))
    # A kid whose key is RS256 cannot be used with another algorithm.
    with pytest.raises(InvalidToken, match="algorithm"):
        verifier.verify(jwt.encode(tk.claims(), ec, "ES256", headers={"kid": "k1"}))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (Settings(auth="jwt"), "needs a key"),
        (Settings(auth="jwt", jwt_secret="short"), "at least 32 bytes"),
        (
            Settings(auth="jwt", jwt_secret=tk.SECRET, jwt_public_key="/x.pem"),
            "one key source",
        ),
    ],
)
def test_incomplete_jwt_settings_are_refused(settings: Settings, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings.validated()


def test_unusable_key_files_are_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--jwt-public-key"):
        JwtVerifier(public_key_file=str(tmp_path / "missing.pem"))
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(ValueError, match="not a PEM public key"):
        JwtVerifier(public_key_file=str(tmp_path / "junk.pem"))
    (tmp_path / "jwks.json").write_text('{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}')
    with pytest.raises(ValueError, match="--jwt-jwks-file"):
        JwtVerifier(jwks_file=str(tmp_path / "jwks.json"))


def test_cli_accepts_jwt_and_refuses_it_incomplete(tmp_path: Path) -> None:
    def serve(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ysync", "serve", *flags],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    result = serve("--auth", "jwt")
    assert result.returncode == 2 and "needs a key" in result.stderr
    result = serve("--auth", "jwt", "--jwt-public-key", str(tmp_path / "none.pem"))
    assert result.returncode == 2 and "--jwt-public-key" in result.stderr
    with YsyncProcess("--auth", "jwt", "--jwt-secret", tk.SECRET):
        pass  # started and became ready


class LoadOnlyHooks(Hooks):
    async def load_document(self, room: str, doc: Any) -> None:
        pass


class OwnAuthHooks(Hooks):
    async def authenticate(self, request: ConnectionRequest) -> Identity:
        return Identity(user_id="host")


def test_host_hooks_decide_who_authenticates() -> None:
    jwt_settings = Settings(auth="jwt", jwt_secret=tk.SECRET)
    # Hooks that do not override authenticate: --auth jwt still protects the rooms.
    load_only = LoadOnlyHooks()
    chosen = Extensions([*auth_extensions(jwt_settings, load_only), from_hooks(load_only)])
    assert chosen.describe_auth() == "JwtAuthenticator" and chosen.accepts_auth_message
    # A host's own authenticate hook wins (it may call JwtAuthenticator itself).
    own = OwnAuthHooks()
    assert auth_extensions(jwt_settings, own) == []
    chosen = Extensions([from_hooks(own)])
    assert run(chosen.authenticate(ConnectionRequest("r"))) == Identity(user_id="host")
    assert not chosen.accepts_auth_message
    assert not Extensions([*auth_extensions(Settings()), from_hooks(Hooks())]).authenticates


# -- over real sockets -------------------------------------------------------------------


@pytest.mark.parametrize("name", list(invalid_tokens()))
def test_invalid_tokens_get_4401_and_not_a_byte_of_the_room(
    jwt_server: YsyncProcess, name: str
) -> None:
    token, reason_part = invalid_tokens()[name]

    async def scenario() -> None:
        # Make sure the room exists and has content an intruder could see.
        async with connect(jwt_server.ws_url, "secret-plans", params={"token": tk.token()}) as s:
            await s.synced()
            s.doc.get("t", type=Text).insert(0, "launch codes")
            # Over 16 KiB the HTTP server itself refuses the request line or header.
            ways = ("auth message",) if name == "too long" else ("query", "header", "auth message")
            for via in ways:
                code, reason, frames = await until_closed(
                    jwt_server.ws_url,
                    "secret-plans",
                    params={"token": token} if via == "query" else None,
                    headers={"Authorization": f"Bearer {token}"} if via == "header" else None,
                    send=[auth_message(token)] if via == "auth message" else [],
                )
                assert (code, frames) == (4401, []), (via, reason)
                assert reason is not None and reason_part in reason, (via, reason)

    run(scenario())


def test_missing_token_gets_4401_and_nothing_is_sent_while_waiting(
    jwt_server: YsyncProcess,
) -> None:
    async def scenario() -> None:
        # No token and silence: refused after --auth-timeout (1 s here).
        code, reason, frames = await until_closed(jwt_server.ws_url, "plans")
        assert (code, frames) == (4401, []) and reason and "token missing" in reason
        # A y-websocket client that speaks first without a token: refused at once.
        code, reason, frames = await until_closed(
            jwt_server.ws_url, "plans", send=[codec.encode_sync_step1(b"\x00")]
        )
        assert (code, frames) == (4401, []) and reason and "token missing" in reason

    run(scenario())


def test_valid_token_by_query_header_or_auth_message_syncs(jwt_server: YsyncProcess) -> None:
    async def scenario() -> None:
        token = tk.token("ada", {"shared/*": "editor"})
        async with connect(jwt_server.ws_url, "shared/doc", params={"token": token}) as a:
            await a.synced()
            a.doc.get("t", type=Text).insert(0, "hi")
            # Header: a server-side client.
            ws = await ws_connect(
                room_url(jwt_server.ws_url, "shared/doc"),
                additional_headers={"Authorization": f"Bearer {token}"},
                proxy=None,
            )
            assert isinstance(codec.decode(await ws.recv()), codec.SyncStep1)  # type: ignore[arg-type]
            await ws.close()
            # Auth message first, then the usual handshake on the same socket.
            ws = await ws_connect(room_url(jwt_server.ws_url, "shared/doc"), proxy=None)
            await ws.send(auth_message(token))
            await ws.send(codec.encode_sync_step1(b"\x00"))
            async with asyncio.timeout(5):
                while True:
                    message = codec.decode(await ws.recv())  # type: ignore[arg-type]
                    if isinstance(message, codec.SyncStep2):
                        break
            await ws.close()

    run(scenario())


def test_no_grant_for_the_room_gets_4403_and_no_content(jwt_server: YsyncProcess) -> None:
    async def scenario() -> None:
        token = tk.token("eve", {"team-b/*": "owner"})
        code, reason, frames = await until_closed(
            jwt_server.ws_url, "team-a/doc", params={"token": token}
        )
        assert (code, frames) == (4403, []) and reason and "no access" in reason

    run(scenario())


def test_token_expiry_closes_the_connection_with_4401(jwt_server: YsyncProcess) -> None:
    async def scenario() -> float:
        token = tk.token("ada", ttl=2)
        async with connect(jwt_server.ws_url, "expiring", params={"token": token}) as s:
            await s.synced()
            started = time.monotonic()
            await s.closed(timeout=10)
            assert s.close_code == 4401
            assert s.close_reason and "token expired" in s.close_reason
            return time.monotonic() - started

    assert run(scenario()) < 5


def test_viewer_and_commenter_cannot_edit_but_read_live_and_share_presence(
    jwt_server: YsyncProcess,
) -> None:
    room = "roles/doc"

    async def scenario() -> None:
        url = jwt_server.ws_url
        editor_token = tk.token("ed", {"roles/*": "editor"})
        async with connect(url, room, params={"token": editor_token}) as editor:
            await editor.synced()
            for role in ("viewer", "commenter"):
                token = tk.token(role, {"roles/*": "editor", room: role})  # exact name wins
                async with connect(url, room, params={"token": token}) as reader:
                    await reader.synced()
                    reader.doc.get("t", type=Text).insert(0, f"{role} was here ")
                    async with asyncio.timeout(5):
                        while reader.permission_denied is None:
                            await asyncio.sleep(0.01)
                    assert reader.close_code is None  # still connected, still reading
                    editor.doc.get("t", type=Text).insert(0, f"live for {role}. ")
                    async with asyncio.timeout(5):
                        while f"live for {role}" not in str(reader.doc.get("t", type=Text)):
                            await asyncio.sleep(0.01)
                    cursor = {"cursor": 1, "who": role}
                    reader.awareness.set_local_state(cursor)
                    # As sent, plus the verified identity the server stamps in.
                    seen = {**cursor, "ysync": {"userId": role, "name": role, "role": role}}
                    await editor.awareness.wait_for(
                        lambda s, r=reader, c=seen: s.get(r.doc.client_id) == c, 3
                    )
            assert "was here" not in str(editor.doc.get("t", type=Text))

    run(scenario())
    events = audit_events(jwt_server)
    denied = [e for e in events if e.get("action") == "edit_denied"]
    assert {e["subject"] for e in denied} >= {"viewer", "commenter"}
    failed = [e for e in events if e.get("action") == "auth_failed"]
    assert failed and all(e["client"].startswith("127.0.0.1:") for e in failed)


def test_audit_log_never_contains_the_token(jwt_server: YsyncProcess) -> None:
    token = tk.hs256(tk.claims(ttl=-60))  # expired: refused and logged

    async def scenario() -> None:
        code, _, _ = await until_closed(jwt_server.ws_url, "audit", params={"token": token})
        assert code == 4401

    run(scenario())
    assert jwt_server.log_path is not None
    log = jwt_server.log_path.read_text()
    assert token not in log and token.split(".")[2] not in log
    assert any(
        e["action"] == "auth_failed" and e["room"] == "audit" for e in audit_events(jwt_server)
    )
