"""HTTP ingress: an ASGI app that turns signed webhooks into events on workflows.

Each source (a payment provider, a shop) has its own secret and, optionally, the events
it may send and the workflows it may start (`web/sources.py`). A request must carry
`Steadyhand-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`; a bad,
missing or stale signature gets 401 and records nothing. The request only records the
event and wakes the workflow (one short transaction); supervisors run in the workers.

Senders get short, generic refusals; what they cannot be told (the store, the registered
workflows, another workflow's id) goes to the log.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from steadyhand.core import jsoncodec
from steadyhand.core.errors import (
    DefinitionError,
    IdempotencyConflict,
    InputError,
    NotFoundError,
    StoreError,
    TooManyEvents,
    UnknownWorkflowError,
)
from steadyhand.core.redact import redact
from steadyhand.define.client import Client
from steadyhand.web.hosts import HostGuard
from steadyhand.web.sources import Source, as_sources

log = logging.getLogger("steadyhand.ingress")

SIGNATURE_HEADER = "steadyhand-signature"
DEFAULT_TOLERANCE = 300.0  # seconds a signature stays valid: bounds replays of captured requests
DEFAULT_MAX_BODY = 256 * 1024
MAX_SIGNATURE_HEADER = 512  # t= (at most 12 digits) and v1= (64 hex digits) fit with room


def sign(secret: str, body: bytes, timestamp: float | None = None) -> str:
    """The header value a sender puts on `body` (what senders, and tests, need)."""
    t = int(time.time() if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify(
    secret: str, body: bytes, header: str | None, now: float, tolerance: float
) -> str | None:
    """None when the signature is good; otherwise why it is not (for the 401 answer)."""
    if not header:
        return "missing Steadyhand-Signature header"
    if len(header) > MAX_SIGNATURE_HEADER or not header.isascii():
        return "signature header is malformed"
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    stamp = parts.get("t", "").strip()
    if not stamp.isdigit() or len(stamp) > 12:
        return "signature header has no valid t=<unix seconds>"
    t = int(stamp)
    if abs(now - t) > tolerance:
        return f"signature timestamp is more than {tolerance:g}s away from now (replay?)"
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    given = parts.get("v1", "")
    if not hmac.compare_digest(expected.encode(), given.encode()):
        return "signature does not match"
    return None


def secrets_from_env(value: str | None = None) -> dict[str, str]:
    """Parse `source=secret,other=secret2` (from $STEADYHAND_INGRESS_SECRETS by default)."""
    text = value if value is not None else os.environ.get("STEADYHAND_INGRESS_SECRETS", "")
    found = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, secret = item.partition("=")
        if not sep or not name or not secret:
            raise InputError(  # never echo the item: it may be a secret missing its source
                "an ingress secret is not source=secret (check $STEADYHAND_INGRESS_SECRETS "
                "and --secret)"
            )
        found[name] = secret
    return found


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_ingress(
    client: Client,
    secrets: Mapping[str, str | Source],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    max_body: int = DEFAULT_MAX_BODY,
    allowed_hosts: frozenset[str] | None = None,
) -> Starlette:
    """An ASGI app with `POST /events/{source}` and `GET /health`; mount it anywhere.

    `secrets` maps each source to its secret, or to a `Source` that also limits which
    events it may send and which workflows it may start. With `allowed_hosts`, requests
    naming another Host are refused (see `web/hosts.py`)."""
    if not secrets:
        raise InputError("the ingress needs at least one source=secret to verify senders")
    sources = as_sources(secrets)

    async def receive(request: Request) -> JSONResponse:
        source = request.path_params["source"]
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            return _error(413, f"body larger than {max_body} bytes")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                return _error(413, f"body larger than {max_body} bytes")
        known = sources.get(source)
        problem = (
            "unknown source"
            if known is None
            else verify(
                known.secret, body, request.headers.get(SIGNATURE_HEADER), time.time(), tolerance
            )
        )
        if problem is not None:
            return _error(401, problem)
        try:
            message = jsoncodec.loads(body)
        except (jsoncodec.JSONDecodeError, UnicodeDecodeError) as exc:
            return _error(400, f"body is not JSON: {exc}")
        except RecursionError:
            return _error(400, "body is nested too deeply to be an event")
        request_error = _check(message)
        if request_error:
            return _error(400, request_error)
        start = message.get("start") or {}
        assert known is not None
        refusal = known.refusal(message["event"], start.get("workflow"))
        if refusal is not None:
            log.warning(
                "ingress refused source %s: event %r, start %r: %s",
                source,
                message["event"],
                start.get("workflow"),
                refusal,
            )
            return _error(403, refusal)
        try:
            sent = await run_in_threadpool(
                client.signal,
                message["event"],
                message.get("payload"),
                workflow_id=message.get("workflow_id"),
                key=message.get("key"),
                dedupe_key=message.get("dedupe_key"),
                start=start.get("workflow"),
                start_input=start.get("input"),
                source=source,
                raw=body.decode("utf-8", errors="replace"),
            )
        except NotFoundError as exc:
            log.info("ingress (source %s): %s", source, redact(str(exc)))
            return _error(404, "no such workflow; send a start to create it with the event")
        except IdempotencyConflict as exc:
            log.warning("ingress (source %s): %s", source, redact(str(exc)))
            return _error(409, "that key belongs to a workflow of another name")
        except UnknownWorkflowError as exc:
            log.warning("ingress (source %s): %s", source, redact(str(exc)))
            return _error(400, "no workflow of that name can be started here")
        except TooManyEvents as exc:
            return _error(429, str(exc))
        except (InputError, DefinitionError) as exc:
            return _error(400, str(exc))
        except StoreError as exc:
            log.error("ingress (source %s): store error: %s", source, redact(str(exc)))
            return _error(503, "temporarily unavailable, retry later")
        return JSONResponse(
            {
                "workflow_id": sent.workflow_id,
                "recorded": sent.recorded,
                "duplicate": not sent.recorded,
                "started": sent.started,
            },
            status_code=202,
        )

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    app = Starlette(
        routes=[
            Route("/events/{source}", receive, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )
    app.add_middleware(HostGuard, hosts=allowed_hosts)
    return app


def _check(message: Any) -> str | None:
    """Shape errors a sender can fix, named precisely."""
    if not isinstance(message, dict):
        return "body must be a JSON object"
    allowed = {"event", "payload", "workflow_id", "key", "dedupe_key", "start"}
    unknown = set(message) - allowed
    if unknown:
        return f"unknown fields {sorted(unknown)}; allowed: {sorted(allowed)}"
    if not isinstance(message.get("event"), str):
        return "field 'event' (the event name, a string) is required"
    for name in ("workflow_id", "key", "dedupe_key"):
        if name in message and not isinstance(message[name], str):
            return f"field {name!r} must be a string"
    start = message.get("start")
    if start is not None and (
        not isinstance(start, dict) or not isinstance(start.get("workflow"), str)
    ):
        return 'field \'start\' must be {"workflow": <name>, "input": <JSON>}'
    return None
