"""How the dashboard and the ingress are served: uvicorn with limits a slow or hostile
client cannot stretch, and the warnings a deployment needs.

uvicorn has no timeout for reading a request's head: a client that sends it a byte at a
time holds a connection for ever (each byte even cancels the keep-alive timer). The h11
protocol here adds one (`head_timeout`): a connection that has not delivered a whole
request head that long after it opened, or after its previous response, is closed. The
number of connections is capped too (`limit_concurrency`: others get 503 at once). Slow
*bodies* are left to the reverse proxy docs/SECURITY.md describes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import h11
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol


@dataclass(frozen=True)
class ServeLimits:
    """uvicorn settings for a server facing clients it does not trust."""

    max_connections: int = 200  # connections and tasks at once; beyond: 503, not a queue
    keep_alive: int = 5  # seconds an idle keep-alive connection is kept open
    max_header_bytes: int = 16 * 1024  # a request's head (line and headers) larger: 400
    graceful_shutdown: int = 10  # seconds in-flight requests get on stop
    backlog: int = 256
    head_timeout: float = 10.0  # seconds to deliver a whole request head

    def uvicorn_options(self) -> dict[str, object]:
        return {
            # h11 (whose head-size limit applies), with a timeout for reading the head
            "http": head_timeout_protocol(self.head_timeout),
            "limit_concurrency": self.max_connections,
            "timeout_keep_alive": self.keep_alive,
            "h11_max_incomplete_event_size": self.max_header_bytes,
            "timeout_graceful_shutdown": self.graceful_shutdown,
            "backlog": self.backlog,
            "server_header": False,
        }


def serve(app: ASGIApp, host: str, port: int, limits: ServeLimits | None = None) -> None:
    """Run `app` until interrupted, with `limits` (defaults above)."""
    import uvicorn

    options = (limits or ServeLimits()).uvicorn_options()
    uvicorn.run(app, host=host, port=port, log_level="warning", **options)  # type: ignore[arg-type]


class HeadTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, plus a deadline for each request head (module docstring)."""

    head_timeout = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the head arrived: the app has it now
            self._cancel_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE:  # waiting for the next request's head
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_too_slow)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def head_timeout_protocol(seconds: float) -> type[HeadTimeoutProtocol]:
    """The protocol class with its head timeout set (uvicorn instantiates it per connection)."""
    attributes: dict[str, Any] = {"head_timeout": seconds}
    return type("HeadTimeoutProtocol", (HeadTimeoutProtocol,), attributes)
