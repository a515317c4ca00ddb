"""Which Host and Origin a request may carry: the defence against DNS rebinding.

A page on `evil.example` whose name the attacker re-points at 127.0.0.1 can make a browser
talk to a dashboard bound to loopback (`--no-auth`): the request arrives with
`Host: evil.example`. Answering only the host names the server is bound to (or a
configured list) defeats that; checking `Origin` on every POST stops cross-site form posts
even where a session cookie would ride along.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")
ANY_ADDRESS = ("0.0.0.0", "::", "")


def allowed_hosts(bind: str, extra: Iterable[str] = ()) -> frozenset[str] | None:
    """Host names a server bound to `bind` answers: loopback names for a loopback bind,
    the address itself otherwise, plus `extra`. None (no check) when bound to every
    address without a configured list: the deployment's proxy must then check Host."""
    names = {h.strip().lower() for h in extra if h.strip()}
    if bind in LOOPBACK_NAMES:
        names.update(LOOPBACK_NAMES)
    elif bind not in ANY_ADDRESS:
        names.add(bind.lower())
    elif not names:
        return None
    return frozenset(names)


def host_name(header: str) -> str:
    """`example.com:8080` -> `example.com`; `[::1]:80` -> `[::1]`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header.split("]", 1)[0] + "]"
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def origin_matches(origin: str | None, host: str) -> bool:
    """A POST's Origin (when a browser sends one) must name this very host."""
    if origin is None:
        return True  # servers (webhook senders, scripts) send none; browsers always do
    if origin == "null":
        return False
    return origin.split("://", 1)[-1].lower() == host.lower()


class HostGuard:
    """ASGI middleware: 421 for an unknown Host, 403 for a cross-origin POST."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str] | None) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            host = headers.get("host", "")
            if self.hosts is not None and host_name(host) not in self.hosts:
                response = PlainTextResponse("unknown Host header", 421)
                await response(scope, receive, send)
                return
            if scope["method"] not in ("GET", "HEAD") and not origin_matches(
                headers.get("origin"), host
            ):
                await PlainTextResponse("cross-origin requests are refused", 403)(
                    scope, receive, send
                )
                return
        await self.app(scope, receive, send)
