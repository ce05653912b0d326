"""Test JWTs and keys for the auth and limits tests (never use these keys elsewhere)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

SECRET = "test-secret-0123456789abcdef-0123456789"  # >= 32 bytes (RFC 7518 3.2)
OTHER_SECRET = "another-secret-0123456789abcdef-012345"
AUDIENCE = "ysync-tests"
ISSUER = "https://issuer.test"

# A server that checks audience and issuer, with no leeway, and waits 1 s for
# an auth message (not 10): what the socket tests start.
JWT_FLAGS = (
    "--auth",
    "jwt",
    "--jwt-secret",
    SECRET,
    "--jwt-audience",
    AUDIENCE,
    "--jwt-issuer",
    ISSUER,
    "--jwt-leeway",
    "0",
    "--auth-timeout",
    "1",
)


def claims(
    sub: str | None = "ada",
    rooms: Any = None,
    *,
    ttl: float = 300.0,
    **extra: Any,
) -> dict[str, Any]:
    now = int(time.time())
    body: dict[str, Any] = {
        "exp": now + ttl,
        "iat": now,
        "aud": AUDIENCE,
        "iss": ISSUER,
        "rooms": {"*": "editor"} if rooms is None else rooms,
        **extra,
    }
    if sub is not None:
        body["sub"] = sub
    return body


def hs256(body: dict[str, Any], secret: str = SECRET, **headers: Any) -> str:
    return jwt.encode(body, secret, algorithm="HS256", headers=headers or None)


def token(sub: str = "ada", rooms: Any = None, *, ttl: float = 300.0, **extra: Any) -> str:
    """A valid HS256 token for the JWT_FLAGS server."""
    return hs256(claims(sub, rooms, ttl=ttl, **extra))


def forged_hs256(body: dict[str, Any], key: bytes) -> str:
    """HS256 by hand, with any bytes as the secret (PyJWT refuses PEM keys as secrets):
    the algorithm-confusion attack, with a server's public key as the HMAC secret."""
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}')
    payload = jwt.utils.base64url_encode(json.dumps(body).encode())
    signing_input = header + b"." + payload
    signature = hmac.new(key, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + jwt.utils.base64url_encode(signature)).decode()


def unsigned(body: dict[str, Any]) -> str:
    """`alg: none`: a token with no signature at all."""
    return jwt.encode(body, None, algorithm="none")


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def write_public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def write_jwks(keys: dict[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey], path: Path) -> Path:
    entries = []
    for kid, key in keys.items():
        if isinstance(key, rsa.RSAPrivateKey):
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            jwk["alg"] = "RS256"
        else:
            jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
            jwk["alg"] = "ES256"
        jwk["kid"] = kid
        entries.append(jwk)
    path.write_text(json.dumps({"keys": entries}))
    return path
