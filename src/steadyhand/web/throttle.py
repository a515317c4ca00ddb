"""Failed-login throttling per client: after `limit` wrong tokens within `window` seconds a
client is refused (429) until the window has passed, so a token cannot be guessed at the
speed of the network. In memory, per process: a restart forgets, which only helps the
guesser by one more window.
"""

from __future__ import annotations

import threading
from collections import deque

MAX_CLIENTS = 10_000  # clients remembered at once: a flood of addresses cannot exhaust memory


class LoginThrottle:
    """Counts failed logins per client key (an address) in a sliding window."""

    def __init__(self, limit: int = 5, window: float = 300.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str, now: float) -> float:
        """Seconds until `client` may try again (0 when it may try now)."""
        with self._lock:
            recent = self._recent(client, now)
            if len(recent) < self.limit:
                return 0.0
            return max(recent[0] + self.window - now, 1.0)

    def failed(self, client: str, now: float) -> None:
        with self._lock:
            if client not in self._failures and len(self._failures) >= MAX_CLIENTS:
                self._failures.pop(next(iter(self._failures)))
            recent = self._recent(client, now)
            recent.append(now)
            self._failures[client] = recent

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)

    def _recent(self, client: str, now: float) -> deque[float]:
        recent = self._failures.get(client, deque())
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        return recent
