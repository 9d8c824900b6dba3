"""Bearer-token authentication with HS256 JWTs."""

from __future__ import annotations

from collections.abc import Iterable

import jwt

from jamservice.errors import Unauthenticated
from jamservice.messages import unprintable


class Authenticator:
    """Turns a stream's `authorization: Bearer <jwt>` metadata into a user id (the token's sub)."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def user_id(self, metadata: Iterable[tuple[str, str | bytes]]) -> str:
        """The token's subject, or Unauthenticated."""
        values = [value for key, value in metadata if key == "authorization"]
        if not values:
            raise Unauthenticated("missing authorization metadata: send 'authorization: Bearer <token>'")
        value = values[0] if isinstance(values[0], str) else values[0].decode("latin-1")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("authorization metadata must be 'Bearer <token>'")
        try:
            claims = jwt.decode(token.strip(), self._secret, algorithms=["HS256"], options={"require": ["sub", "exp"]})
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired") from None
        except jwt.InvalidTokenError as error:
            raise Unauthenticated(f"invalid token: {error}") from None
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject or len(subject) > 128 or unprintable(subject):
            raise Unauthenticated("token subject must be 1 to 128 printable characters")
        return subject


def make_token(secret: str, subject: str, ttl_seconds: float = 3600) -> str:
    """Sign a token for `subject`, for tests and tools."""
    import time

    now = int(time.time())
    return jwt.encode({"sub": subject, "iat": now, "exp": now + int(ttl_seconds)}, secret, algorithm="HS256")
