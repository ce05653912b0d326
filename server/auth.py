"""JWT authentication (`--auth jwt`): verify the token, then map its claims to a role.

Keys: an HS256 shared secret, an RS256/ES256 public key file (PEM), or a JWKS
file (keys chosen by the token's `kid`; the file is re-read when a token names
a kid it lacks, so keys rotate without a restart). Each key accepts exactly the
one algorithm of its type: `alg: none` and algorithm confusion (an RS256 public
key used as an HS256 secret) are refused.

Checked: signature, `exp` (required), `nbf`, `aud` (when --jwt-audience is set;
a token with an `aud` is refused when it is not), `iss` (when --jwt-issuer is
set), `sub` (required), all with --jwt-leeway seconds of clock skew. The claims
then decide the role in the room (`ysync.server.permissions`).

The token comes from the `Authorization: Bearer` header, the `token` query
parameter (what browsers can send), or, when neither is there, a y-websocket
auth message sent as the connection's first frame:
`varUint(2) varUint(0) varString(token)`.

Who authenticates (`authenticator_for`): the host app's `Hooks.authenticate`
when it overrides it, otherwise JWT when `settings.auth == "jwt"`, otherwise
nobody (every client is an anonymous editor).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ysync.rooms.hooks import ConnectionRequest, Hooks, Identity, Refused, Role
from ysync.server.permissions import (
    ClaimsError,
    NoAccess,
    identity_from_claims,
    parse_grants,
    role_for,
)
from ysync.server.settings import Settings

log = logging.getLogger("ysync.auth")

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403

MAX_TOKEN_BYTES = 16 * 1024  # far above any real JWT; refused before parsing
_JWKS_RELOAD_INTERVAL = 1.0  # seconds between re-reads of the JWKS file for unknown kids
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


class InvalidToken(Exception):
    """The token is not acceptable; `reason` says why (safe to send to the client)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class JwtVerifier:
    """Verifies JWTs against one key source. Build with `from_settings`."""

    def __init__(
        self,
        *,
        secret: str = "",
        public_key_file: str = "",
        jwks_file: str = "",
        audience: str = "",
        issuer: str = "",
        leeway: float = 30.0,
    ) -> None:
        self.audience = audience or None
        self.issuer = issuer or None
        self.leeway = leeway
        self._key: Any = None
        self._algorithm = ""
        self._jwks_path = Path(jwks_file) if jwks_file else None
        self._jwks: dict[str, jwt.PyJWK] = {}
        self._jwks_mtime = 0.0
        self._jwks_checked = 0.0
        if secret:
            self._key, self._algorithm = secret.encode(), "HS256"
        elif public_key_file:
            self._key, self._algorithm = _load_public_key(Path(public_key_file))
        elif self._jwks_path is not None:
            self._load_jwks()
        else:
            raise ValueError("JWT verification needs a secret, a public key file or a JWKS file")

    @classmethod
    def from_settings(cls, settings: Settings) -> JwtVerifier:
        """Raises ValueError naming the setting when a key cannot be used."""
        return cls(
            secret=settings.jwt_secret,
            public_key_file=settings.jwt_public_key,
            jwks_file=settings.jwt_jwks_file,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=settings.jwt_leeway,
        )

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or raise `InvalidToken` (never anything else)."""
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken("token too long")
        try:
            key, algorithm = self._key_for(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "sub"]},
            )
        except InvalidToken:
            raise
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("token not valid yet (nbf/iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("token audience (aud) not accepted") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("token issuer (iss) not accepted") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"token lacks the '{exc.claim}' claim") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("token signature invalid") from None
        except jwt.InvalidAlgorithmError:
            raise InvalidToken(f"token algorithm not accepted (only {algorithm})") from None
        except jwt.DecodeError:
            raise InvalidToken("token malformed") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"token invalid: {type(exc).__name__}") from None
        except Exception:
            # Whatever a crafted token makes a library raise is a refusal, not a crash.
            log.debug("token verification failed unexpectedly", exc_info=True)
            raise InvalidToken("token invalid") from None
        return claims

    # -- keys ------------------------------------------------------------------------

    def _key_for(self, token: str) -> tuple[Any, str]:
        if self._jwks_path is None:
            return self._key, self._algorithm
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        if kid is None and len(self._jwks) == 1:
            jwk = next(iter(self._jwks.values()))
        else:
            if not isinstance(kid, str):
                raise InvalidToken("token has no 'kid' header to choose a JWKS key")
            jwk = self._jwks.get(kid)
            if jwk is None and self._reload_jwks():
                jwk = self._jwks.get(kid)
            if jwk is None:
                raise InvalidToken("token signed with an unknown key (kid)")
        return jwk.key, jwk.algorithm_name

    def _reload_jwks(self) -> bool:
        """Re-read the JWKS file if it changed (at most once a second); True if re-read."""
        now = time.monotonic()
        if self._jwks_path is None or now - self._jwks_checked < _JWKS_RELOAD_INTERVAL:
            return False
        self._jwks_checked = now
        try:
            if os.stat(self._jwks_path).st_mtime == self._jwks_mtime:
                return False
            self._load_jwks()
        except (OSError, ValueError) as exc:
            log.error("JWKS file could not be re-read; keeping the old keys: %s", exc)
            return False
        log.info("JWKS file re-read", extra={"keys": len(self._jwks)})
        return True

    def _load_jwks(self) -> None:
        path = self._jwks_path
        if path is None:
            return
        try:
            mtime = os.stat(path).st_mtime
            data = json.loads(path.read_bytes())
            keyset = jwt.PyJWKSet.from_dict(data)
        except OSError as exc:
            raise ValueError(f"--jwt-jwks-file {path}: {exc.strerror}") from None
        except (ValueError, jwt.PyJWTError) as exc:
            raise ValueError(f"--jwt-jwks-file {path}: not a usable JWKS: {exc}") from None
        keys = {}
        for jwk in keyset.keys:
            if jwk.key_type == "oct":
                raise ValueError(f"--jwt-jwks-file {path}: symmetric keys are not accepted")
            keys[jwk.key_id or ""] = jwk
        self._jwks, self._jwks_mtime = keys, mtime


def _load_public_key(path: Path) -> tuple[Any, str]:
    try:
        key = load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"--jwt-public-key {path}: {exc.strerror}") from None
    except ValueError:
        raise ValueError(f"--jwt-public-key {path}: not a PEM public key") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ValueError(f"--jwt-public-key {path}: RSA keys must have at least 2048 bits")
        return key, "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _EC_ALGORITHMS:
        return key, _EC_ALGORITHMS[key.curve.name]
    raise ValueError(f"--jwt-public-key {path}: only RSA and EC (P-256/384/521) keys are supported")


class JwtAuthenticator:
    """`Hooks.authenticate` for --auth jwt: the token decides who connects and its role."""

    accepts_auth_message = True

    def __init__(self, verifier: JwtVerifier) -> None:
        self.verifier = verifier

    @classmethod
    def from_settings(cls, settings: Settings) -> JwtAuthenticator:
        return cls(JwtVerifier.from_settings(settings))

    async def authenticate(self, request: ConnectionRequest) -> Identity:
        token = request.token
        if token is None:
            raise Refused(
                CLOSE_UNAUTHORIZED,
                "token missing: send ?token=, Authorization: Bearer, or an auth message",
            )
        try:
            claims = self.verifier.verify(token)
            exp = claims["exp"]
            expires_at = float(exp) + self.verifier.leeway
            return identity_from_claims(claims, request.room, expires_at=expires_at)
        except InvalidToken as exc:
            raise Refused(CLOSE_UNAUTHORIZED, f"invalid token: {exc.reason}") from None
        except ClaimsError as exc:
            raise Refused(CLOSE_UNAUTHORIZED, f"invalid token: {exc}") from None
        except NoAccess as exc:
            raise Refused(CLOSE_FORBIDDEN, str(exc)) from None


class Authenticator:
    """What the transport calls per connection (see `authenticator_for`)."""

    def __init__(self, source: Hooks | JwtAuthenticator, description: str) -> None:
        self.source = source
        self.authenticate = source.authenticate
        self.accepts_auth_message = bool(getattr(source, "accepts_auth_message", False))
        self.description = description
        self.enabled = description != "off"


def authenticator_for(settings: Settings, hooks: Hooks) -> Authenticator:
    """The host's `authenticate` hook if it overrides it; else JWT if --auth jwt; else off.

    Raises ValueError (naming the setting) when the JWT key cannot be used.
    """
    if type(hooks).authenticate is not Hooks.authenticate:
        if settings.auth == "jwt":
            log.info("the host app's authenticate hook is used instead of --auth jwt")
        return Authenticator(hooks, "the host app's authenticate hook")
    if settings.auth == "jwt":
        return Authenticator(JwtAuthenticator.from_settings(settings), "jwt")
    return Authenticator(hooks, "off")


# -- the HTTP API ------------------------------------------------------------------------

ALL_ROOMS = "*"  # the room a node-wide API endpoint is about


class ApiRefused(Exception):
    """The HTTP API refuses the request: `status` is 401 (no or bad token) or 403."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def authorize_api(authenticator: Authenticator, request: ConnectionRequest) -> Identity:
    """Who calls the HTTP API (`/api/...`) about `request.room`: a room's name, or
    `ALL_ROOMS` for node-wide endpoints. Raises `ApiRefused`.

    Auth off: everyone (an anonymous identity), as for WebSocket connections.
    `--auth jwt`: an `Authorization: Bearer` token whose `rooms` claim maps `"*"`
    to `"owner"` may use every endpoint; a room's endpoint also accepts a token
    that makes its holder owner of that room (the most specific match, as for
    connections). A host's `authenticate` hook is asked with the room (`"*"` for
    node-wide endpoints) and must return the owner role. Tokens in the query
    string are not read: URLs end up in logs.
    """
    if not authenticator.enabled:
        return Identity()
    request = ConnectionRequest(request.room, {}, request.headers, request.client)
    source = authenticator.source
    if isinstance(source, JwtAuthenticator):
        return _authorize_jwt(source.verifier, request)
    try:
        identity = await authenticator.authenticate(request)
    except Refused as exc:
        raise ApiRefused(401 if exc.code == CLOSE_UNAUTHORIZED else 403, exc.reason) from None
    if identity.role is not Role.OWNER or identity.read_only:
        raise ApiRefused(403, _needs_owner(request.room))
    return identity


def _authorize_jwt(verifier: JwtVerifier, request: ConnectionRequest) -> Identity:
    token = request.token
    if token is None:
        raise ApiRefused(401, "token missing: send Authorization: Bearer <token>")
    try:
        claims = verifier.verify(token)
        grants = parse_grants(claims.get("rooms"))
    except InvalidToken as exc:
        raise ApiRefused(401, f"invalid token: {exc.reason}") from None
    except ClaimsError as exc:
        raise ApiRefused(401, f"invalid token: {exc}") from None
    owns_all = any(grant.pattern == ALL_ROOMS and grant.role is Role.OWNER for grant in grants)
    owns_room = request.room != ALL_ROOMS and role_for(grants, request.room) is Role.OWNER
    if not (owns_all or owns_room):
        raise ApiRefused(403, _needs_owner(request.room))
    name = claims.get("name")
    return Identity(
        user_id=str(claims["sub"]), name=name if isinstance(name, str) else None, role=Role.OWNER
    )


def _needs_owner(room: str) -> str:
    if room == ALL_ROOMS:
        return 'the HTTP API needs a token granting "owner" on "*" (every room)'
    return 'the HTTP API needs a token granting "owner" on this room or on "*"'
