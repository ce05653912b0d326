"""Retry delays: exponential backoff with jitter and a cap (the one implementation).

Used by the SDK's reconnects (`ysync.clients`), the Redis bus's reconnects and
the group commit's retries of a failed store write.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long a session waits before reconnect attempt number `attempt` (0-based).

    The delay grows as `initial * factor**attempt` up to `max_delay`, and is
    then drawn from `[delay * (1 - jitter), delay]`, so clients dropped by the
    same server restart do not all come back in the same millisecond. The
    attempt count restarts once a connection reaches `synced`.

    Defaults: the first retry after a drop comes within 0.1 s (a restarting
    node is usually back quickly); the cap of 5 s is close to the JS provider's
    2.5 s, a little slower so hundreds of SDK clients (bots, load harnesses)
    spread out more. `max_attempts=None` retries forever, as the JS provider.
    """

    initial: float = 0.1
    factor: float = 2.0
    max_delay: float = 5.0
    jitter: float = 0.5
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.initial < 0 or self.max_delay < 0 or self.factor < 1:
            raise ValueError("Backoff needs initial >= 0, max_delay >= 0 and factor >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("Backoff jitter is a fraction between 0 and 1")
        if self.max_attempts is not None and self.max_attempts < 0:
            raise ValueError("Backoff max_attempts must be >= 0 (or None: forever)")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt number `attempt` (0 is the first retry)."""
        # Cap the exponent too: 2.0 ** 10_000 would overflow a float.
        ceiling = min(self.max_delay, self.initial * self.factor ** min(attempt, 64))
        draw = (rng or random).random()
        return ceiling * (1 - self.jitter * draw)

    def gives_up(self, attempt: int) -> bool:
        """Whether `attempt` failed retries in a row exhaust `max_attempts`."""
        return self.max_attempts is not None and attempt >= self.max_attempts
