"""The dashboard: server-rendered pages (overview, workflows, one workflow's story), operator
actions (retry, cancel) as CSRF-checked POSTs recorded as facts, and Prometheus `/metrics`.

No build step and nothing from the internet: Jinja2 templates, one CSS file and a few lines
of JavaScript that reload the page while it is open. Store calls run in a thread pool.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from steadyhand.core.errors import InputError, NotFoundError, StoreError
from steadyhand.core.redact import redact
from steadyhand.core.status import derive_status
from steadyhand.core.stuck import StuckRule, ago
from steadyhand.define.app import App
from steadyhand.define.client import Client
from steadyhand.ops.metrics import store_registry
from steadyhand.ops.reports import FILTERS, Listing, inspect_workflow, list_workflows
from steadyhand.ops.schedule_report import schedule_lines
from steadyhand.ops.settings import stuck_rule
from steadyhand.ops.stats import collect
from steadyhand.ops.story import TIMELINE_PAGE, short, tell
from steadyhand.ops.timetext import STATE_STYLE, when
from steadyhand.store.base import Store
from steadyhand.web.hosts import HostGuard
from steadyhand.web.panels import panels, search
from steadyhand.web.security import SESSION_COOKIE, SESSION_SECONDS, Guard
from steadyhand.web.throttle import LoginThrottle

log = logging.getLogger("steadyhand.dashboard")
Handler = Callable[[Request], Awaitable[Response]]
MAX_FORM_BYTES = 16_384
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


@dataclass(frozen=True)
class DashboardOptions:
    """How the dashboard serves: access token, read-only, refresh period, stuck threshold."""

    token: str | None = None
    read_only: bool = False
    refresh: float = 5.0  # seconds between reloads of an open page; 0 turns it off
    stuck: StuckRule = field(default_factory=stuck_rule)
    page_size: int = 50
    window: float = 3600.0  # the overview's recent window
    metrics_window: float = 300.0  # the history the first scrape's counters start from
    metrics_settle: float = 2.0  # facts younger than this are counted by the next scrape
    session_seconds: float = SESSION_SECONDS  # a login lasts this long, then asks again
    allowed_hosts: frozenset[str] | None = None  # Host names answered (None: any; see hosts.py)
    login_attempts: int = 5  # failed logins per client within `login_window`, then 429
    login_window: float = 300.0
    timeline_page: int = TIMELINE_PAGE  # facts of one workflow's timeline per page


def create_app(
    store: Store, options: DashboardOptions | None = None, primary: Store | None = None
) -> Starlette:
    """A Starlette app serving the dashboard for `store` (the caller closes the store).

    With `primary`, `store` is a read replica: pages and /metrics read it, and retry and
    cancel go to `primary` (which the caller closes too)."""
    return Dashboard(store, options or DashboardOptions(), primary).app


class Dashboard:
    """Routes and handlers (see the module docstring)."""

    def __init__(
        self, store: Store, options: DashboardOptions, primary: Store | None = None
    ) -> None:
        self.store = store
        self.options = options
        self.guard = Guard(options.token, options.session_seconds)
        self.throttle = LoginThrottle(options.login_attempts, options.login_window)
        self.client = Client(App(), primary or store)
        self.reads_replica = primary is not None
        self.registry = store_registry(
            store, options.stuck, options.metrics_window, options.metrics_settle
        )
        self.env = Environment(
            loader=PackageLoader("steadyhand.web", "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(when=when, ago=ago, short=short, redact=redact)
        self.env.globals.update(state_style=STATE_STYLE, filters=FILTERS)
        static = str(resources.files("steadyhand.web").joinpath("static"))
        self.app = Starlette(
            routes=[
                Route("/", self.page(self.overview)),
                Route("/workflows", self.page(self.workflows)),
                Route("/workflows/{workflow_id}", self.page(self.workflow)),
                Route("/workflows/{workflow_id}/{action}", self.page(self.act), methods=["POST"]),
                Route("/login", self.login, methods=["GET", "POST"]),
                Route("/logout", self.logout, methods=["POST"]),
                Route("/metrics", self.metrics),
                Route("/healthz", self.healthz),
                Mount("/static", StaticFiles(directory=static), name="static"),
            ],
        )
        self.app.add_middleware(HostGuard, hosts=options.allowed_hosts)

    # -- gatekeeping ------------------------------------------------------------------------
    def page(self, handler: Handler) -> Handler:
        """Wrap a handler: require access, keep a session for CSRF, add security headers."""

        async def wrapped(request: Request) -> Response:
            if not self.guard.allowed(request):
                if request.method != "GET":
                    return _plain("a valid session or bearer token is required", 401)
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?{urlencode({'next': target})}", 303)
            fresh = None
            session = self.guard.session(request)
            if session is None:
                fresh = self.guard.new_session(authenticated=not self.guard.required)
                session = self.guard.verify(fresh)
            request.state.session = session
            try:
                response = await handler(request)
            except NotFoundError as exc:
                log.info("dashboard: %s", redact(str(exc)))
                response = self.render(request, "error.html", {"message": "No such workflow."}, 404)
            except StoreError as exc:
                log.error("dashboard: store error: %s", redact(str(exc)))
                message = "The store is unavailable; this page will work again once it is back."
                response = self.render(request, "error.html", {"message": message}, 503)
            except InputError as exc:
                response = self.render(request, "error.html", {"message": str(exc)}, 400)
            if fresh is not None:
                self._set_cookie(request, response, fresh)
            return response

        return wrapped

    def render(
        self, request: Request, name: str, context: dict[str, Any], status: int = 200
    ) -> Response:
        session = getattr(request.state, "session", None)
        html = self.env.get_template(name).render(
            request=request,
            csrf=self.guard.csrf_token(session) if session else "",
            read_only=self.options.read_only,
            auth=self.guard.required,
            refresh=self.options.refresh,
            now=time.time(),
            **context,
        )
        return _secure(HTMLResponse(html, status))

    def _set_cookie(self, request: Request, response: Response, value: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            value,
            max_age=int(self.options.session_seconds),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    async def login(self, request: Request) -> Response:
        target = request.query_params.get("next", "/")
        if not target.startswith("/") or target.startswith("//"):
            target = "/"
        if not self.guard.required:
            return RedirectResponse(target, 303)
        error = None
        if request.method == "POST":
            client = request.client.host if request.client else "?"
            wait = self.throttle.retry_after(client, time.time())
            if wait:
                response = _plain(f"too many failed logins; try again in {wait:.0f}s", 429)
                response.headers["retry-after"] = str(int(wait + 0.999))
                return response
            form = await _form(request)
            if self.guard.token_matches(form.get("token")):
                self.throttle.succeeded(client)
                response = RedirectResponse(target, 303)
                self._set_cookie(request, response, self.guard.new_session(authenticated=True))
                return _secure(response)
            self.throttle.failed(client, time.time())
            log.warning("dashboard: failed login from %s", client)
            error = "That token is not the one this dashboard was started with."
        html = self.env.get_template("login.html").render(
            request=request,
            next=target,
            error=error,
            csrf="",
            read_only=True,
            auth=True,
            refresh=0,
            now=time.time(),
        )
        return _secure(HTMLResponse(html, 401 if error else 200))

    async def logout(self, request: Request) -> Response:
        session = self.guard.session(request)
        if session is not None:
            self.guard.revoke(session)
        response = RedirectResponse("/login", 303)
        response.delete_cookie(SESSION_COOKIE)
        return _secure(response)

    async def healthz(self, request: Request) -> Response:
        return _plain("ok", 200)

    async def metrics(self, request: Request) -> Response:
        if not self.guard.allowed(request):
            return _plain("send Authorization: Bearer <token>", 401)
        body = await run_in_threadpool(generate_latest, self.registry)
        return Response(body, headers={"content-type": CONTENT_TYPE_LATEST})

    # -- pages ------------------------------------------------------------------------------
    async def overview(self, request: Request) -> Response:
        now = time.time()
        rule = self.options.stuck

        def read() -> dict[str, Any]:
            stats = collect(self.store, now, rule, self.options.window, buckets=60)
            stuck = list_workflows(self.store, Listing(state="stuck", limit=20), now, rule)
            failed = list_workflows(self.store, Listing(state="failed", limit=10), now, rule)
            outcomes = sorted({o for a in stats.attempts for o in a.outcomes})
            lag = self.store.replica_lag() if self.reads_replica else None
            return {
                "stats": stats,
                "stuck": stuck,
                "failed": failed,
                "outcomes": outcomes,
                "replica_lag": lag,
                "schedules": schedule_lines(self.store),
                **panels(self.store, now, self.options.window),
            }

        context = await run_in_threadpool(read)
        return self.render(request, "overview.html", {"page": "overview", **context})

    async def workflows(self, request: Request) -> Response:
        now = time.time()
        q = request.query_params
        state = q.get("state") or None
        error = None
        since_text = q.get("since", "")
        try:
            from steadyhand.ops.timetext import parse_since

            limit = int(q.get("limit") or self.options.page_size)
            listing = Listing(
                state=state,
                name=q.get("name") or None,
                since=parse_since(since_text, now) if since_text else None,
                limit=limit,
                cursor=q.get("cursor") or None,
            )
            page = await run_in_threadpool(
                list_workflows, self.store, listing, now, self.options.stuck
            )
        except (InputError, ValueError) as exc:
            error, page, listing = str(exc), None, Listing()
        query = (q.get("q") or "").strip()[:500]
        if query and page is not None:  # an id, an id prefix or an idempotency key
            rule = self.options.stuck
            page = await run_in_threadpool(search, self.store, query, listing, now, rule)
            if len(page.rows) == 1 and not (q.get("state") or q.get("cursor")):
                return _secure(RedirectResponse(f"/workflows/{page.rows[0].id}", 303))
        keep = ("state", "name", "since", "limit", "q")
        params = {k: v for k, v in q.items() if k in keep and v}
        next_url = None
        if page is not None and page.next_cursor:
            next_url = "/workflows?" + urlencode({**params, "cursor": page.next_cursor})
        first_url = "/workflows?" + urlencode(params) if q.get("cursor") else None
        context = {
            "page": "workflows",
            "rows": page.rows if page else [],
            "listing": listing,
            "since_text": since_text,
            "error": error,
            "next_url": next_url,
            "first_url": first_url,
            "query": query,
        }
        return self.render(request, "workflows.html", context, 400 if error else 200)

    async def workflow(self, request: Request) -> Response:
        workflow_id = request.path_params["workflow_id"]
        after = request.query_params.get("after", "0")
        if not after.isdigit() or len(after) > 12:
            raise InputError("after must be a fact number")
        now = time.time()
        view, tasks, stuck = await run_in_threadpool(
            inspect_workflow, self.store, workflow_id, now, self.options.stuck
        )
        status = derive_status(view, tasks)
        context = {
            "page": "workflow",
            "story": tell(view, status, stuck, after=int(after), limit=self.options.timeline_page),
            "view": view,
            "tasks": tasks,
            "input": short(view.input, 2000),
            "notice": request.query_params.get("notice"),
        }
        return self.render(request, "workflow.html", context)

    async def act(self, request: Request) -> Response:
        workflow_id = request.path_params["workflow_id"]
        action = request.path_params["action"]
        if action not in ("retry", "cancel"):
            return _plain(f"unknown action {action!r}", 404)
        if self.options.read_only:
            return _plain("this dashboard is read-only: retry and cancel are refused", 403)
        form = await _form(request)
        if not self.guard.csrf_ok(request, form.get("csrf")):
            return _plain("the form's CSRF token is missing or wrong: reload the page", 403)
        reason = (form.get("reason") or "").strip()[:500] or f"{action} from the dashboard"
        by = "dashboard" + (f" ({request.client.host})" if request.client else "")
        do = self.client.retry if action == "retry" else self.client.cancel
        try:
            answer = await run_in_threadpool(do, workflow_id, reason, by)
            done = "recorded" if answer.applied else "not applied"
            notice = f"{action} {done}: {answer.message}; the workflow is now {answer.state}"
        except InputError as exc:
            notice = f"{action} refused: {exc}"
        target = f"/workflows/{quote(workflow_id, safe='')}?{urlencode({'notice': notice})}"
        return _secure(RedirectResponse(target, 303))


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body, small by construction (no multipart needed)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


def _plain(text: str, status: int) -> Response:
    return _secure(PlainTextResponse(text, status))


def _secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
