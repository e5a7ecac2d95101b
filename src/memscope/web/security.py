"""Who may call the debug app, and how often the heavy scans run.

The bearer token (compared in constant time), the loopback-only rule, and the gate that
lets one heavy scan run at a time and no more often than a minimum interval.
"""

from __future__ import annotations

import hmac
import ipaddress
import math
import threading
import time
from collections.abc import Callable, Iterable

from .._base.validate import check_number

__all__ = ["MIN_TOKEN_CHARS", "ScanGate", "Verdict", "check_token", "is_loopback", "token_ok"]

# a debug endpoint that dumps the heap deserves a token nobody guesses
MIN_TOKEN_CHARS = 16


def check_token(token: object, loopback_only: object) -> bytes | None:
    """The token as bytes (None when loopback_only allows none); errors name the argument."""
    if not isinstance(loopback_only, bool):
        raise TypeError(f"loopback_only must be True or False, got {type(loopback_only).__name__}")
    if token is None:
        if not loopback_only:
            raise ValueError(
                "token is required: pass token=... (a secret of at least "
                f"{MIN_TOKEN_CHARS} characters, e.g. secrets.token_urlsafe(32)), "
                "or loopback_only=True to serve only clients on this host without one"
            )
        return None
    if not isinstance(token, str):
        raise TypeError(f"token must be a str or None, got {type(token).__name__}")
    if len(token) < MIN_TOKEN_CHARS or token != token.strip():
        raise ValueError(
            f"token must be at least {MIN_TOKEN_CHARS} characters without surrounding "
            f"spaces (e.g. secrets.token_urlsafe(32)), got one of {len(token)} characters"
        )
    try:
        return token.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError("token must be ASCII (it travels in an HTTP header)") from None


def token_ok(expected: bytes, headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether the request carries ``Authorization: Bearer <expected>`` (constant-time compare)."""
    given: bytes | None = None
    for name, value in headers:
        if name.lower() == b"authorization":
            if given is not None:  # two Authorization headers: ambiguous, refused
                return False
            given = value
    if given is None:
        return False
    scheme, _, credential = given.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    # compare_digest on bytes: constant time whatever the length or the characters
    return hmac.compare_digest(credential.strip(), expected)


def is_loopback(client: object) -> bool:
    """Whether an ASGI ``scope["client"]`` is an address of this host (127.0.0.0/8, ::1)."""
    if not isinstance(client, (tuple, list)) or not client or not isinstance(client[0], str):
        return False  # no peer address (a unix socket behind a proxy...): not provably local
    try:
        address = ipaddress.ip_address(client[0].split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


class Verdict:
    """A ScanGate's answer: admitted (then ``release()`` when done) or the seconds to wait."""

    __slots__ = ("admitted", "reason", "retry_after")

    def __init__(self, admitted: bool, retry_after: float = 0.0, reason: str = "") -> None:
        self.admitted = admitted
        self.retry_after = retry_after
        self.reason = reason

    @property
    def retry_after_header(self) -> str:
        """Retry-After in whole seconds, at least 1."""
        return str(max(1, math.ceil(self.retry_after)))


class ScanGate:
    """Single flight and a rate limit for heavy scans: one at a time, starts ``interval`` apart.

    ``enter()`` never blocks: it admits the caller or says how long to wait. Thread-safe;
    ``clock`` is injectable (monotonic seconds).
    """

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = check_number("scan_interval", interval, low=0.0, high=3600.0)
        self._clock = clock
        self._lock = threading.Lock()
        self._running: str | None = None
        self._started = 0.0
        self._last_start: float | None = None
        self._last_seconds = 1.0  # how long a scan took last time: the busy Retry-After
        self.refused_total = 0
        self.admitted_total = 0

    @property
    def running(self) -> str | None:
        """The name of the scan in flight, or None."""
        return self._running

    def enter(self, name: str) -> Verdict:
        """Admit the scan ``name`` now, or refuse it with the seconds until one may start."""
        with self._lock:
            now = self._clock()
            if self._running is not None:
                self.refused_total += 1
                left = max(self._last_seconds - (now - self._started), 1.0)
                return Verdict(False, left, f"a {self._running} scan is running")
            if self._last_start is not None and now - self._last_start < self.interval:
                self.refused_total += 1
                wait = self.interval - (now - self._last_start)
                return Verdict(
                    False, wait, f"heavy scans run at most once every {self.interval:g} s"
                )
            self._running = name
            self._started = self._last_start = now
            self.admitted_total += 1
            return Verdict(True)

    def release(self) -> None:
        """End the scan in flight (its duration sets the next busy Retry-After)."""
        with self._lock:
            if self._running is not None:
                self._last_seconds = max(self._clock() - self._started, 0.0)
            self._running = None
