"""The `Client`: how application code starts workflows, sends them events, and asks,
waits, cancels or retries. Each call is one short transaction through the engine."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from datetime import datetime
from typing import TYPE_CHECKING, Any

from steadyhand.core import jsoncodec
from steadyhand.core.actions import NOT_APPLICABLE, ActionStatus
from steadyhand.core.deadlines import check_deadline
from steadyhand.core.errors import (
    DefinitionError,
    InputError,
    NotFoundError,
    WorkflowStillRunning,
)
from steadyhand.core.limits import MAX_KEY_CHARS, MAX_WORKFLOW_ID_CHARS, check_text
from steadyhand.core.plans import (
    Plan,
    check_name,
    encode_json,
)
from steadyhand.core.status import Status, derive_status
from steadyhand.core.view import WorkflowView
from steadyhand.define.tracecontext import caller_trace
from steadyhand.engine.answers import Signalled, Started
from steadyhand.engine.engine import Engine
from steadyhand.engine.starting import StartCoalescer, StartRequest
from steadyhand.store import Store
from steadyhand.store.clock import store_clock
from steadyhand.store.endings import Endings
from steadyhand.store.priorities import check_priority

if TYPE_CHECKING:
    from steadyhand.define.app import App
    from steadyhand.ops.reports import Page


POLL = 0.05  # seconds between looks while the store cannot say a workflow ended


def recheck_after(endings: Endings | None, poll: float | None) -> float:
    """Seconds a wait sleeps between looks: `poll` if given, else long while the store's
    listener hears ends as they happen and short while it does not."""
    if poll is not None:
        return poll
    return endings.recheck if endings is not None and endings.hearing else POLL


def new_workflow_id() -> str:
    """Time-ordered ids (ms timestamp + randomness) keep the primary-key index append-mostly."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(8)}"


def new_workflow_ids(count: int) -> list[str]:
    """`count` ids as `new_workflow_id` makes them, with one read of the clock and of the
    random source (a batch of starts)."""
    stamp = f"{int(time.time() * 1000):012x}"
    noise = secrets.token_hex(8 * count)
    return [stamp + noise[16 * i : 16 * i + 16] for i in range(count)]


class Client:
    """Starts and inspects workflows in one store. Thread-safe."""

    def __init__(self, app: App, store: Store) -> None:
        self.app = app
        self.store = store
        # The store's clock, not this machine's: what the client stamps (a start, a signal)
        # is judged by workers on other machines.
        self.engine = Engine(store, app.supervisors, clock=store_clock(store), plans=app.plans)
        self._starts = StartCoalescer(self.engine.start_batch)

    def start(
        self,
        name: str,
        input: Any = None,
        *,
        key: str | None = None,
        deadline: float | None = None,
        priority: int = 0,
        fairness_key: str | None = None,
    ) -> Started:
        """Start workflow `name` with `input`; with `key`, starting twice returns the first.

        `deadline` (seconds, default: the definition's): when it passes before the workflow
        ends, the workflow rolls back what took effect. `priority` (0..9, higher first)
        orders its tasks when workers lease (a task waiting long goes first whatever its
        priority); calls of workflows with different `fairness_key`s (e.g. a tenant) take
        turns for a service's `max_in_flight` slots.

        Threads that start at the same time share a transaction (`StartCoalescer`): each
        gets its own answer or its own error, as if it had started alone."""
        workflow_id, plan, value, text, key = self._checked(name, input, key, new_workflow_id())
        seconds = check_deadline(deadline)
        priority, fairness_key = check_priority(priority, fairness_key)
        with caller_trace(f"steadyhand start {name}", {"steadyhand.workflow": name}) as trace:
            request = StartRequest(
                workflow_id, plan, value, text, key, None, seconds, priority, fairness_key, trace
            )
            return self._starts.start(request)

    def start_many(
        self,
        requests: Iterable[tuple[str, Any, str | None]],
        *,
        deadline: float | None = None,
        priority: int = 0,
        fairness_key: str | None = None,
    ) -> list[Started]:
        """Start several workflows, each `(name, input, key or None)`, in one transaction:
        all are created (or found by their keys), or, on any error, none is. The options
        are those of `start`, for every one of them."""
        items = list(requests)
        ids = new_workflow_ids(len(items))
        batch = [
            (*self._checked(name, input, key, wid), None)
            for (name, input, key), wid in zip(items, ids, strict=True)
        ]
        seconds = check_deadline(deadline)
        priority, fairness_key = check_priority(priority, fairness_key)
        names = ",".join(sorted({request[1].workflow for request in batch}))
        with caller_trace(f"steadyhand start {names}", {"steadyhand.workflow": names}) as trace:
            return self.engine.start_many(
                batch,
                deadline=seconds,
                priority=priority,
                fairness_key=fairness_key,
                trace=trace,
            )

    def _checked(
        self, name: str, input: Any, key: str | None, workflow_id: str
    ) -> tuple[str, Plan, Any, str, str | None]:
        """A start request checked: its new id, the plan, the input as stored (a value and
        its JSON text), the key."""
        plan = self.app.plan(name)
        text = encode_json(self.app.checked_input(name, input), "workflow input")
        if key is not None:
            check_text(key, "idempotency key", MAX_KEY_CHARS)
        return workflow_id, plan, jsoncodec.loads(text), text, key

    def signal(
        self,
        event: str,
        payload: Any = None,
        *,
        workflow_id: str | None = None,
        key: str | None = None,
        dedupe_key: str | None = None,
        start: str | None = None,
        start_input: Any = None,
        source: str | None = None,
        raw: str | None = None,
        priority: int = 0,
        fairness_key: str | None = None,
    ) -> Signalled:
        """Record event `event` on a workflow (by id or idempotency key) and wake it.

        `dedupe_key` makes redelivery harmless; `start` names the workflow to start (with
        `start_input`, under `key`) when none exists yet, so events may arrive in any order;
        a workflow started so gets `priority` and `fairness_key` (see `start`).
        """
        try:
            check_name(event, "event name")
        except DefinitionError as exc:
            raise InputError(str(exc)) from None
        if (workflow_id is None) == (key is None):
            raise InputError("name the workflow by exactly one of workflow_id or key")
        if workflow_id is not None:
            check_text(workflow_id, "workflow_id", MAX_WORKFLOW_ID_CHARS)
        if key is not None:
            check_text(key, "key", MAX_KEY_CHARS)
        if dedupe_key is not None:
            check_text(dedupe_key, "dedupe_key", MAX_KEY_CHARS, empty=True)
        data: dict[str, Any] = {"payload": jsoncodec.loads(encode_json(payload, "event payload"))}
        if source:
            data["source"] = source
        if dedupe_key:
            data["dedupe_key"] = dedupe_key
        if raw is not None:
            data["raw"] = raw
        priority, fairness_key = check_priority(priority, fairness_key)
        begin = None
        if start is not None:
            plan = self.app.plan(start)
            text = encode_json(self.app.checked_input(start, start_input), "workflow input")
            begin = (new_workflow_id(), plan, jsoncodec.loads(text), text)
        with caller_trace(f"steadyhand signal {event}", {"steadyhand.event": event}) as trace:
            if trace is not None:
                data["trace"] = trace
            return self.engine.signal(
                event,
                data,
                workflow_id=workflow_id,
                key=key,
                dedupe_key=dedupe_key,
                start=begin,
                priority=priority,
                fairness_key=fairness_key,
            )

    def view(self, workflow_id: str) -> WorkflowView:
        check_text(workflow_id, "workflow id", MAX_WORKFLOW_ID_CHARS)
        found = self.engine.read(workflow_id)
        if found is None:
            raise NotFoundError(f"no workflow {workflow_id!r} in {self.store.safe_url}")
        return found[0]

    def status(self, workflow_id: str) -> Status:
        """Where the workflow stands; once it completed, `result` is the saga's
        `{step: result}` (or what a custom supervisor completed with)."""
        check_text(workflow_id, "workflow id", MAX_WORKFLOW_ID_CHARS)
        found = self.engine.read(workflow_id)
        if found is None:
            raise NotFoundError(f"no workflow {workflow_id!r} in {self.store.safe_url}")
        return derive_status(*found)

    def wait(self, workflow_id: str, timeout: float = 60.0, poll: float | None = None) -> Status:
        """Block until the workflow ends and return its final status.

        The store wakes the wait the moment the workflow ends (one listener per store,
        shared by every waiting client, see `Store.endings`); the status is also re-read
        every `poll` seconds as a safety net (default: the listener's recheck while it
        hears, 0.05 s while the store cannot tell). Raises `WorkflowStillRunning` (a
        `TimeoutError`; its `status` is the last one read) when `timeout` seconds pass
        first: the workflow goes on, only the waiting stops.
        """
        deadline = time.monotonic() + timeout
        endings = self.store.endings()
        woken = threading.Event()
        heard = nullcontext() if endings is None else endings.watch(workflow_id, woken.set)
        with heard:
            while True:
                woken.clear()  # before the look: an end heard after it wakes the sleep
                status = self.status(workflow_id)
                if status.done:
                    return status
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WorkflowStillRunning(
                        f"workflow {workflow_id} is still {status.state} after {timeout:g}s; it "
                        "goes on (wait again, or look with `steadyhand status`)",
                        status,
                    )
                if endings is not None:
                    endings.listen()
                woken.wait(min(recheck_after(endings, poll), left))

    def list(
        self,
        *,
        state: str | None = None,
        name: str | None = None,
        key: str | None = None,
        id_prefix: str | None = None,
        service: str | None = None,
        input: Mapping[str, Any] | None = None,
        since: float | datetime | str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """One page of workflows, newest first, filtered as `steadyhand list` filters them:
        `state` (running, waiting, compensating, completed, compensated, failed, stuck),
        `name`, idempotency `key`, `id_prefix`, a remote `service` its plan calls, `input`
        values (`{"customer.id": 42}`), `since` (a Unix time, an aware datetime, "2h", an
        ISO time). Pass `page.next_cursor` as `cursor` for the next page."""
        from steadyhand.ops.search import make_listing, search

        listing = make_listing(
            state=state,
            name=name,
            key=key,
            id_prefix=id_prefix,
            service=service,
            input=input,
            since=since,
            limit=limit,
            cursor=cursor,
        )
        return search(self.store, listing)

    def cancel(
        self,
        workflow_id: str,
        reason: str = "",
        by: str | None = None,
        *,
        batch: str | None = None,
    ) -> ActionStatus:
        """Ask a workflow to stop and roll back what took effect; a `failed` one too (a new
        round that compensates). Decided under the workflow's lock: `result` says whether
        this call did it (`done`), someone else had (`already`), or the workflow had
        already ended completed or compensated (`ended`: nothing to roll back). `batch`
        names the bulk action this is part of (kept in the fact's data)."""
        check_text(workflow_id, "workflow id", MAX_WORKFLOW_ID_CHARS)
        return self.engine.cancel(workflow_id, reason, by or _who(), batch)

    def retry(
        self,
        workflow_id: str,
        reason: str = "",
        by: str | None = None,
        *,
        batch: str | None = None,
    ) -> ActionStatus:
        """Resume a `failed` workflow: a new round of attempts where it stopped.

        Decided under the workflow's lock: two operators retrying at once open one round;
        the second is answered `already`. Raises `InputError` when the workflow is not
        failed (and no retry of this round explains why)."""
        check_text(workflow_id, "workflow id", MAX_WORKFLOW_ID_CHARS)
        answer = self.engine.retry(workflow_id, reason, by or _who(), batch)
        if answer.result == NOT_APPLICABLE:
            raise InputError(answer.message)
        return answer

    def hold_service(self, service: str, reason: str = "", by: str | None = None) -> bool:
        """Hold every new call to `service` (as an open circuit would: no attempt is spent)
        until `release_service`; recorded as a service fact. False if it was held already."""
        change = self.engine.set_hold(
            service, held=True, reason=reason or "held by an operator", by=by or _who()
        )
        return change is not None

    def release_service(self, service: str, reason: str = "", by: str | None = None) -> bool:
        """End a hold: calls flow again and workflows that waited are woken at once.
        False if the service was not held."""
        change = self.engine.set_hold(
            service, held=False, reason=reason or "released by an operator", by=by or _who()
        )
        return change is not None

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _who() -> str:
    return os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"
