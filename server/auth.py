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

Who authenticates: the host app's `Hooks.authenticate` when it overrides it
(its extension runs first and always decides), otherwise `JwtAuthenticator`
(an extension) when `settings.auth == "jwt"`, otherwise nobody (every client is
an anonymous editor).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ysync.rooms.extensions import Extension, Extensions
from ysync.rooms.hooks import ConnectionRequest, Hooks, Identity, Role
from ysync.rooms.vocabulary import CloseCode, Refused
from ysync.server import permissions
from ysync.server.permissions import (
    ClaimsError,
    NoAccess,
    identity_from_claims,
)
from ysync.server.settings import Settings

log = logging.getLogger("ysync.auth")

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
        jwk: jwt.PyJWK | None
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


class JwtAuthenticator(Extension):
    """The extension behind --auth jwt: the token decides who connects and its role."""

    priority = 1000
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
                CloseCode.UNAUTHORIZED,
                "token missing: send ?token=, Authorization: Bearer, or an auth message",
            )
        try:
            claims = self.verifier.verify(token)
            exp = claims["exp"]
            expires_at = float(exp) + self.verifier.leeway
            return identity_from_claims(claims, request.room, expires_at=expires_at)
        except InvalidToken as exc:
            raise Refused(CloseCode.UNAUTHORIZED, f"invalid token: {exc.reason}") from None
        except ClaimsError as exc:
            raise Refused(CloseCode.UNAUTHORIZED, f"invalid token: {exc}") from None
        except NoAccess as exc:
            raise Refused(CloseCode.FORBIDDEN, str(exc)) from None


def auth_extensions(settings: Settings, hooks: Hooks | None = None) -> list[Extension]:
    """JWT with --auth jwt, unless the host's own `authenticate` hook replaces it
    (`ysync.rooms.extensions.from_hooks` runs that one). Raises ValueError
    (naming the setting) when the JWT key cannot be used."""
    if settings.auth != "jwt":
        return []
    if hooks is not None and hooks.authenticates:
        log.info("the host app's authenticate hook is used instead of --auth jwt")
        return []
    return [JwtAuthenticator.from_settings(settings)]


# -- the HTTP API ------------------------------------------------------------------------

ALL_ROOMS = permissions.ALL_ROOMS  # the room a node-wide API endpoint is about


async def authorize_api(
    extensions: Extensions, request: ConnectionRequest, needs: Role = Role.OWNER
) -> Identity:
    """Who calls the HTTP API (`/api/...`) about `request.room`: a room's name, or
    `ALL_ROOMS` for node-wide endpoints; raises `Refused` (401 or 403) unless the
    caller's role there is at least `needs`.

    Auth off: everyone may do everything, as over WebSocket. Otherwise the
    extensions authenticate the request as they do connections, with two
    differences: only the `Authorization: Bearer` header is read (tokens in
    query strings end up in logs), and with --auth jwt a node-wide endpoint
    needs a token whose `rooms` claim maps exactly `"*"` to the role.
    """
    if not extensions.authenticates:
        return Identity(role=Role.OWNER)
    headers_only = ConnectionRequest(request.room, {}, request.headers, request.client)
    identity = await _api_identity(extensions, headers_only)
    if identity is not None and _has(identity, needs):
        return identity
    if request.room != ALL_ROOMS:  # a node-wide grant covers every room
        node_wide = dataclasses.replace(headers_only, room=ALL_ROOMS)
        identity = await _api_identity(extensions, node_wide)
        if identity is not None and _has(identity, needs):
            return identity
    raise Refused(CloseCode.FORBIDDEN, _needs_role(request.room, needs))


async def _api_identity(extensions: Extensions, request: ConnectionRequest) -> Identity | None:
    """The caller's identity in `request.room`; None if it has no access there.
    Raises `Refused` (401) for a missing or invalid token."""
    try:
        return await extensions.authenticate(request)
    except Refused as exc:
        if exc.code != CloseCode.UNAUTHORIZED:
            return None
        if request.token is None:
            raise Refused(
                CloseCode.UNAUTHORIZED, "token missing: send Authorization: Bearer <token>"
            ) from None
        raise


def _has(identity: Identity, needs: Role) -> bool:
    return not identity.read_only and identity.role.rank >= needs.rank


def _needs_role(room: str, role: Role) -> str:
    if room == ALL_ROOMS:
        return f'the HTTP API needs a token granting "{role.value}" on "*" (every room)'
    return f'the HTTP API needs a token granting "{role.value}" on this room or on "*"'
