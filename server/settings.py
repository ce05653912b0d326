"""Settings: one typed object; every field is a `ysync serve` flag and a `YSYNC_*` variable.

This module is the only reader of the environment. Precedence: command-line
flag, then `YSYNC_<NAME>`, then the default. Each default says why it is safe.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

from ysync.rooms.structure import SAFE_NESTING_DEPTH


def _setting(default: Any, help: str, choices: Sequence[str] | None = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = _setting("127.0.0.1", "interface to listen on (loopback: not exposed by accident)")
    port: int = _setting(1234, "TCP port (the y-websocket convention)")
    store: str = _setting(
        "sqlite:///./data/ysync.db",
        "where documents are kept: sqlite:///path.db (embedded, durable), "
        "postgresql://... (clusters), memory:// (lost on exit)",
    )
    redis_url: str = _setting(
        "", "Redis URL for multi-node fan-out, e.g. redis://127.0.0.1:6379/0 (empty: single node)"
    )
    node_ttl: float = _setting(
        15.0, "seconds without a heartbeat after which a node's clients' presence is dropped"
    )
    anti_entropy_interval: float = _setting(
        10.0, "seconds between state-vector checks of each open room with the other nodes"
    )
    store_audit_interval: float = _setting(
        60.0,
        "seconds between checks that the store holds all of each open room's document"
        " (one stored-room read per room per interval; what it lacks is written)",
    )
    workers: int = _setting(1, "worker processes sharing the port (more than 1 needs --redis-url)")
    auth: str = _setting("none", "authentication: none (everyone edits) or jwt", ("none", "jwt"))
    jwt_secret: str = _setting(
        "",
        "HS256 shared secret for --auth jwt, at least 32 bytes (prefer the variable to the flag)",
    )
    jwt_public_key: str = _setting("", "file with the RS256/ES256 public key (PEM) for --auth jwt")
    jwt_jwks_file: str = _setting(
        "", "JWKS file (RS256/ES256 keys by kid) for --auth jwt; re-read when an unknown kid comes"
    )
    jwt_audience: str = _setting("", "required `aud` claim (empty: tokens must carry no aud)")
    jwt_issuer: str = _setting("", "required `iss` claim (empty: not checked)")
    jwt_leeway: float = _setting(
        30.0, "seconds of clock skew tolerated on exp/nbf (token issuer vs this node)"
    )
    token_expiry_grace: float = _setting(
        0.0, "seconds a connection outlives its token's exp (+ leeway) before it is closed (4401)"
    )
    auth_timeout: float = _setting(
        10.0, "seconds to wait for a token in a y-websocket auth message when none is in the URL"
    )
    allowed_origins: str = _setting(
        "",
        "comma-separated Origins browsers may connect from, e.g. https://app.example.com,"
        "https://*.example.com (empty: any; clients sending no Origin are not browsers)",
    )
    gc_tuning: int = _setting(
        1,
        "1: freeze start-up objects and raise GC thresholds (full collections stall every "
        "client for ~0.5 s at thousands of connections); 0: leave the process's GC alone",
    )
    log_format: str = _setting(
        "console", "log lines: console (people) or json", ("console", "json")
    )
    log_level: str = _setting("info", "log level", ("debug", "info", "warning", "error"))
    path_prefix: str = _setting(
        "/", "URL prefix before the room name, e.g. /ws/ (room = rest of the path)"
    )
    flush_window: float = _setting(
        0.05, "seconds an accepted update may wait before its batch is committed"
    )
    max_pending_bytes: int = _setting(
        64 * 1024 * 1024,
        "bytes of uncommitted updates held during a store outage; past it edits are refused (4503)",
    )
    compact_after_updates: int = _setting(
        1000, "log entries after which a room is compacted into one snapshot (keeps loads fast)"
    )
    unload_grace: float = _setting(
        10.0, "seconds a room with no clients stays loaded (quick reconnects skip a reload)"
    )
    awareness_timeout: float = _setting(
        30.0, "seconds before an unrenewed awareness state is removed (clients renew every 15)"
    )
    awareness_clients_per_connection: int = _setting(
        4,
        "awareness client ids one connection may introduce (a tab has one; reloads and "
        "several documents add a few); more are dropped (0: no limit)",
    )
    awareness_state_bytes: int = _setting(
        8192,
        "largest awareness state (cursor, selection, user) accepted; larger ones are dropped "
        "(every newcomer downloads every state) (0: no limit)",
    )
    awareness_entries_per_message: int = _setting(
        1000,
        "awareness entries read from one client message (its own plus echoes of the "
        "others'); the rest is ignored unread, bounding one message's work (0: no limit)",
    )
    presence_idle_after: float = _setting(
        60.0,
        "seconds without awareness change or edit after which the presence API calls a user idle",
    )
    presence_leave_debounce: float = _setting(
        3.0,
        "seconds a user's last connection may be gone before the feed says presence.left "
        "(a reload is neither a leave nor a join)",
    )
    activity_retention_days: float = _setting(
        30.0, "days finished sessions are kept for the activity API (pruned hourly)"
    )
    send_queue_frames: int = _setting(
        1024, "frames queued for one client before it is cut off as a slow consumer (4508)"
    )
    send_queue_bytes: int = _setting(
        32 * 1024 * 1024, "bytes queued for one client before it is cut off as a slow consumer"
    )
    send_buffer_node_bytes: int = _setting(
        256 * 1024 * 1024,
        "bytes buffered for all clients of the node together; past it the clients holding "
        "the most are cut off as slow consumers (4508; 0: only each client's own bound)",
    )
    awareness_tick: float = _setting(
        0.01,
        "seconds over which a busy room's awareness changes go out as one frame per client "
        "(a quiet room's go out at once; 0: every change as it comes)",
    )
    max_message_bytes: int = _setting(
        16 * 1024 * 1024, "largest accepted WebSocket message (whole documents sync in one) (4413)"
    )
    max_document_bytes: int = _setting(
        32 * 1024 * 1024,
        "largest encoded document client edits may grow a room to, pending data included "
        "(4413; 0: no limit); a room holds 2-40x this in memory (many tiny separate items "
        "cost the most)",
    )
    max_document_items: int = _setting(
        2_000_000,
        "separate items (yrs blocks, ~200 bytes of memory each) client edits may grow a room "
        "to; max_document_bytes alone does not bound memory for documents of tiny items "
        "(4413; 0: no limit)",
    )
    max_nesting_depth: int = _setting(
        256,
        "deepest nesting of shared types, and of JSON values inside one item, an update may "
        "build; yrs crashes the process past ~30,000 (4400)",
    )
    max_gap_structs: int = _setting(
        10_000,
        "structs of a room that may wait for an update they depend on (a clock gap); each "
        "later update retries them (4503; 0: no limit)",
    )
    max_gap_bytes: int = _setting(
        1024 * 1024,
        "bytes of such waiting structs per room; they count toward max_document_bytes "
        "(4503; 0: no limit)",
    )
    max_connections_per_user: int = _setting(
        200,
        "y-websocket connections one authenticated user (token sub) may hold on this node "
        "(4503; 0: no limit)",
    )
    max_rooms_per_user: int = _setting(
        100,
        "distinct rooms one authenticated user may hold open on this node; a glob grant cannot "
        "fill max_rooms alone (4503; 0: no limit)",
    )
    header_timeout: float = _setting(
        10.0,
        "seconds a connection has to send a complete HTTP request head (408; 0: no limit); "
        "idle and slow-header sockets are closed after it",
    )
    max_header_bytes: int = _setting(
        32 * 1024, "largest HTTP request head, cookies included (431; 0: no limit)"
    )
    max_handshakes: int = _setting(
        1024,
        "connections at once still sending their request head; past it the oldest slow one "
        "(over 1 s) is closed (408), or the newcomer refused if all are fresh (503; 0: no limit)",
    )
    max_handshakes_per_ip: int = _setting(
        16,
        "slow request heads (over 1 s) one address may hold: past it its oldest is closed "
        "(408); fresh bursts pass (0: no limit)",
    )
    max_clients_per_room: int = _setting(
        1000, "connections one room accepts; each edit is sent to all of them (4503; 0: no limit)"
    )
    max_rooms: int = _setting(
        10_000, "rooms loaded on this node at once; bounds memory per node (4503; 0: no limit)"
    )
    rate_messages: float = _setting(
        500.0,
        "messages per second one connection may send, sustained; typing sends ~30 (4529; 0: off)",
    )
    rate_messages_burst: int = _setting(
        2000, "messages one connection may send at once (e.g. queued offline edits)"
    )
    rate_bytes: int = _setting(
        1024 * 1024, "bytes per second one connection may send, sustained (4529; 0: off)"
    )
    rate_bytes_burst: int = _setting(
        32 * 1024 * 1024, "bytes one connection may send at once; at least --max-message-bytes"
    )
    ip_connections_per_minute: int = _setting(
        1000,
        "connection attempts per minute from one address (IPv6: per /64) before a ban "
        "(4529; 0: off)",
    )
    ip_ban_seconds: float = _setting(
        60.0, "seconds an address over --ip-connections-per-minute is refused"
    )
    drain_seconds: float = _setting(
        0.0,
        "seconds after SIGTERM/SIGINT during which /readyz answers 503 and clients keep "
        "being served, before they are closed with 1012 (behind a load balancer: the time it "
        "needs to notice; 0: no load balancer to wait for)",
    )
    shutdown_timeout: float = _setting(
        25.0,
        "seconds from SIGTERM/SIGINT to exit, drain included; past it the process exits "
        "with status 1 (below Kubernetes' default 30 s grace period)",
    )
    presence_feed_rate: float = _setting(
        10.0,
        "events per second of one kind that supersede each other (e.g. a user's presence "
        "updates) one event-feed subscriber gets; the latest state wins",
    )
    event_queue: int = _setting(
        1000, "events waiting for one event-feed subscriber before it is cut off as too slow"
    )
    event_replay: int = _setting(
        256, "events a room's feed keeps so a subscriber reconnecting with Last-Event-ID resumes"
    )
    cors_origins: str = _setting(
        "",
        "comma-separated browser Origins allowed to call the HTTP API (CORS), e.g. "
        "https://app.example.com, or * for any (empty: none; same-origin pages need none)",
    )
    max_comment_bytes: int = _setting(
        16 * 1024, "largest comment body, as JSON (413 past it; bodies are rich text, not files)"
    )
    max_metadata_bytes: int = _setting(
        4 * 1024, "largest thread metadata object, as JSON (413 past it: it is the app's pin data)"
    )
    auto_version_interval: float = _setting(
        600.0,
        "seconds between automatic versions of each room that changed meanwhile "
        "(idle rooms get none; 0: no automatic versions)",
    )
    version_retention: int = _setting(
        100, "automatic versions kept per room, newest first (0: no count limit; named ones stay)"
    )
    version_max_age_days: float = _setting(
        0.0, "days after which automatic versions are removed (0: kept; named ones stay)"
    )
    tombstone_days: float = _setting(
        30.0,
        "days a deleted room stays deleted: clients reconnecting with its offline state are "
        "refused (4410) instead of recreating it (0: no tombstone)",
    )
    seed_document: str = _setting(
        "",
        "file with every new room's initial content (a Yjs update, or JSON), applied once by "
        "the server when the room is first created (empty: none; never seed from clients)",
    )
    webhook: str = _setting(
        "",
        "URLs (comma-separated) every event is POSTed to, signed with --webhook-secret (empty: none; more via /api/webhooks)",
    )
    webhook_secret: str = _setting(
        "",
        "the Standard Webhooks secret (whsec_ + base64) of the --webhook URLs; the same on every node",
    )
    webhook_debounce: float = _setting(
        5.0,
        "seconds: at most one room.updated per room per node in that time",
    )
    webhook_max_attempts: int = _setting(
        8,
        "deliveries tried per event (exponential backoff: 1, 2, 4, ... s) before it is given up",
    )
    webhook_timeout: float = _setting(
        10.0,
        "seconds a webhook receiver has to answer (then the attempt failed: retried)",
    )
    hocuspocus: bool = _setting(
        True,
        "also speak the Hocuspocus protocol (@hocuspocus/provider, TipTap) on the root path and "
        "--hocuspocus-path, on the same rooms as y-websocket clients",
    )
    hocuspocus_path: str = _setting(
        "/hocuspocus",
        "a second path for Hocuspocus clients besides the root, e.g. for a proxy routing by path "
        "(empty: the root only; a y-websocket room of this name is then out of reach)",
    )
    hocuspocus_max_documents: int = _setting(
        100,
        "documents one Hocuspocus connection may have open or awaiting auth (Hocuspocus's "
        "maxPendingDocuments); bounds what one socket holds",
    )
    hocuspocus_pending_bytes: int = _setting(
        5 * 1024 * 1024,
        "bytes one Hocuspocus connection may send for documents whose auth is not decided yet "
        "(4205 past it, as Hocuspocus's maxUnauthenticatedQueueSize)",
    )
    hocuspocus_pending_messages: int = _setting(
        1000,
        "messages one Hocuspocus connection may send for documents whose auth is not decided "
        "yet (4205 past it)",
    )
    demo: bool = _setting(
        True,
        "serve the demo at / and the inspector at /inspect (static pages; they use the same "
        "WebSocket and /api endpoints as any client, with the same auth)",
    )
    demo_dev_tokens: bool = _setting(
        False,
        "POST /demo/token hands anyone a token signed with --jwt-secret, for trying the demo "
        "with --auth jwt; development only",
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Defaults overridden by `YSYNC_*` variables."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = environ.get(env_name(f.name))
            if raw is not None:
                values[f.name] = _convert(f.name, f.type, raw)
        return cls(**values).validated()

    def validated(self) -> Settings:
        """Return self, or raise ValueError naming the setting that is wrong."""
        self._validate_ranges()
        self._validate_topology()
        self._validate_limits()
        self._validate_auth()
        self._validate_webhooks()
        return self

    def _validate_webhooks(self) -> None:
        for url in filter(None, (u.strip() for u in self.webhook.split(","))):
            if not url.startswith(("http://", "https://")):
                raise ValueError(
                    f"--webhook {url!r}: a webhook URL starts with http:// or https://"
                )
        if self.webhook.strip() and not self.webhook_secret.startswith("whsec_"):
            raise ValueError(
                "--webhook needs --webhook-secret whsec_<base64> (the same on every node)"
            )

    def _validate_ranges(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be 1-65535, not {self.port}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, not {self.workers}")
        for name in _NON_NEGATIVE:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        for name in _POSITIVE:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")

    def _validate_topology(self) -> None:
        if self.workers > 1 and not self.redis_url:
            raise ValueError(
                "--workers > 1 needs --redis-url: without Redis each process would hold "
                "its own copy of a room and clients would split"
            )
        if self.redis_url and self.store.partition(":")[0].lower() == "memory":
            raise ValueError(
                "--redis-url needs a shared store (postgresql://..., or one sqlite:/// file "
                "for processes on one host): with memory:// each node keeps its own history"
            )
        if not self.path_prefix.startswith("/") or not self.path_prefix.endswith("/"):
            raise ValueError(f"path_prefix must start and end with '/', not {self.path_prefix!r}")
        if self.hocuspocus_path and (
            not self.hocuspocus_path.startswith("/") or self.hocuspocus_path == "/"
        ):
            raise ValueError(
                f"hocuspocus_path must start with '/' and name a path, not {self.hocuspocus_path!r}"
            )
        if self.shutdown_timeout <= self.drain_seconds:
            raise ValueError(
                "shutdown_timeout must be greater than drain_seconds: after the drain the "
                "node still closes its connections and commits what it accepted"
            )

    def _validate_limits(self) -> None:
        if self.max_nesting_depth > SAFE_NESTING_DEPTH:
            raise ValueError(
                f"max_nesting_depth must be at most {SAFE_NESTING_DEPTH}: "
                "yrs crashes the process on nesting not far past it"
            )
        if self.rate_messages and self.rate_messages_burst < 1:
            raise ValueError("rate_messages_burst must be at least 1")
        if self.rate_bytes and self.rate_bytes_burst < self.max_message_bytes:
            raise ValueError(
                "rate_bytes_burst must be at least max_message_bytes, "
                "or a message of the largest accepted size could never pass"
            )

    def _validate_auth(self) -> None:
        if self.demo_dev_tokens and not (self.demo and self.auth == "jwt" and self.jwt_secret):
            raise ValueError(
                "--demo-dev-tokens signs tokens with the HS256 secret: it needs the demo on, "
                "--auth jwt and --jwt-secret"
            )
        keys = {
            "--jwt-secret": self.jwt_secret,
            "--jwt-public-key": self.jwt_public_key,
            "--jwt-jwks-file": self.jwt_jwks_file,
        }
        given = [flag for flag, value in keys.items() if value]
        if self.auth == "none":
            return
        if not given:
            raise ValueError(
                "--auth jwt needs a key: --jwt-secret (HS256), --jwt-public-key FILE "
                "(RS256/ES256) or --jwt-jwks-file FILE"
            )
        if len(given) > 1:
            raise ValueError(f"--auth jwt takes one key source, not {' and '.join(given)}")
        if self.jwt_secret and len(self.jwt_secret.encode()) < 32:
            # RFC 7518 section 3.2: an HS256 key must be at least 256 bits.
            raise ValueError("--jwt-secret must be at least 32 bytes (RFC 7518 section 3.2)")


# Checked by `Settings.validated`.
_NON_NEGATIVE = (
    "flush_window",
    "unload_grace",
    "awareness_timeout",
    "jwt_leeway",
    "token_expiry_grace",
    "max_document_bytes",
    "max_document_items",
    "max_gap_structs",
    "max_gap_bytes",
    "max_connections_per_user",
    "max_rooms_per_user",
    "header_timeout",
    "max_header_bytes",
    "max_handshakes",
    "max_handshakes_per_ip",
    "max_clients_per_room",
    "max_rooms",
    "rate_messages",
    "rate_bytes",
    "ip_connections_per_minute",
    "ip_ban_seconds",
    "drain_seconds",
    "auto_version_interval",
    "version_retention",
    "version_max_age_days",
    "tombstone_days",
    "send_buffer_node_bytes",
    "awareness_tick",
    "awareness_clients_per_connection",
    "awareness_state_bytes",
    "awareness_entries_per_message",
    "presence_idle_after",
    "presence_leave_debounce",
    "activity_retention_days",
)
_POSITIVE = (
    "store_audit_interval",
    "max_nesting_depth",
    "auth_timeout",
    "presence_feed_rate",
    "event_queue",
    "event_replay",
    "send_queue_frames",
    "send_queue_bytes",
    "max_message_bytes",
    "max_pending_bytes",
    "compact_after_updates",
    "max_comment_bytes",
    "max_metadata_bytes",
    "hocuspocus_max_documents",
    "hocuspocus_pending_bytes",
    "hocuspocus_pending_messages",
    "webhook_debounce",
    "webhook_max_attempts",
    "webhook_timeout",
)


def to_environ(settings: Settings) -> dict[str, str]:
    """The `YSYNC_*` variables that rebuild `settings` (for worker processes)."""
    return {env_name(f.name): str(getattr(settings, f.name)) for f in fields(Settings)}


def env_name(setting: str) -> str:
    return "YSYNC_" + setting.upper()


def _flag(setting: str) -> str:
    return "--" + setting.replace("_", "-")


_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True}
_BOOLEANS |= {"0": False, "false": False, "no": False, "off": False}


def _convert(name: str, type_name: Any, raw: str) -> Any:
    if str(type_name) == "bool":
        try:
            return _BOOLEANS[raw.strip().lower()]
        except KeyError:
            raise ValueError(
                f"{name}: expected 1/0, true/false, yes/no or on/off, got {raw!r}"
            ) from None
    kind = {"int": int, "float": float}.get(str(type_name), str)
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name}: expected {kind.__name__}, got {raw!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting (`--x`/`--no-x` for booleans); unset flags stay None."""
    for f in fields(Settings):
        default = f.default if f.default is not MISSING else None
        text = f"{f.metadata['help']} [env {env_name(f.name)}, default {default!r}]"
        if str(f.type) == "bool":
            kind: dict[str, Any] = {"action": argparse.BooleanOptionalAction}
        else:
            kind = {
                "type": {"int": int, "float": float}.get(str(f.type), str),
                "choices": f.metadata["choices"],
            }
        parser.add_argument(_flag(f.name), dest=f.name, default=None, help=text, **kind)


def from_arguments(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment, then overridden by the flags given."""
    base = Settings.from_env(environ)
    given = {f.name: getattr(args, f.name) for f in fields(Settings)}
    return replace(base, **{k: v for k, v in given.items() if v is not None}).validated()
