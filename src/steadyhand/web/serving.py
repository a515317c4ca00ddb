"""How the dashboard and the ingress are served: uvicorn with limits a slow or hostile
client cannot stretch, and the warnings a deployment needs.

uvicorn has no timeout for reading a request's headers: a client that sends them a byte at
a time holds a connection. `limit_concurrency` caps how many such connections one process
keeps (others get 503 at once), and docs/SECURITY.md tells how to put a reverse proxy with
header and body timeouts in front of anything reachable from outside.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import ASGIApp


@dataclass(frozen=True)
class ServeLimits:
    """uvicorn settings for a server facing clients it does not trust."""

    max_connections: int = 200  # connections and tasks at once; beyond: 503, not a queue
    keep_alive: int = 5  # seconds an idle keep-alive connection is kept open
    max_header_bytes: int = 16 * 1024  # a request's head (line and headers) larger: 400
    graceful_shutdown: int = 10  # seconds in-flight requests get on stop
    backlog: int = 256

    def uvicorn_options(self) -> dict[str, object]:
        return {
            "http": "h11",  # the parser whose head-size limit applies (httptools has none)
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
