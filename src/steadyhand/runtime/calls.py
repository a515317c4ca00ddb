"""Performing one agent call: build its context, run it under its timeout, classify the result.

Kept apart from the worker's scheduling so the rules "what counts as a timeout, a
transient failure, a permanent one" live in one place and return plain `Outcome`s.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from steadyhand.core.classify import PERMANENT, Overrides, classify
from steadyhand.core.classify import UNCERTAIN as UNCERTAIN_VERDICT
from steadyhand.core.errors import InputError, OutcomeUnknown, PermanentError, TransientError
from steadyhand.core.facts import FAILED, PROBE, SUCCEEDED, TIMED_OUT, UNCERTAIN
from steadyhand.core.plans import RetryPolicy, encode_json
from steadyhand.core.records import Task
from steadyhand.core.redact import redact
from steadyhand.define.agents import Agent, Context, ProbeAnswer
from steadyhand.define.typed import build
from steadyhand.engine.answers import Outcome

MAX_ERROR_CHARS = 2000
LOGGED_ERROR_CHARS = 300

log = logging.getLogger("steadyhand.worker")


def context_for(task: Task, beat: Callable[[Any], None] | None = None) -> Context:
    payload = task.payload
    args = payload.get("args", {})
    assert task.step is not None and task.attempt is not None
    return Context(
        workflow_id=task.workflow_id,
        workflow=payload.get("workflow", ""),
        step=task.step,
        phase=task.kind,
        attempt=task.attempt,
        idempotency_key=payload["key"],
        action_key=payload.get("action_key", payload["key"]),
        input=payload.get("input"),
        results=args.get("results", {}),
        result=args.get("result"),
        timeout=float(payload.get("timeout", 30.0)),
        last_heartbeat=payload.get("last_heartbeat"),
        beat=beat,
        fencing_token=int(payload.get("token", task.attempt)),
    )


def log_outcome(agent: str, task: Task, outcome: Outcome, extra: dict[str, Any]) -> None:
    """One INFO line per attempt outcome, so a person tailing the log sees what happens:
    `workflow W step S action attempt 2 (agent book_hotel): failed (transient) in 12.3 ms:
    HTTPError: 503`."""
    if not log.isEnabledFor(logging.INFO):
        return
    data = outcome.data or {}
    took = data.get("duration_ms")
    what = outcome.suffix
    if outcome.suffix == FAILED and "permanent" in data:
        what += " (permanent)" if data["permanent"] else " (transient)"
    line = (
        f"workflow {task.workflow_id} step {task.step} {task.kind} attempt {task.attempt} "
        f"(agent {agent}): {what}"
    )
    if took is not None:
        line += f" in {took:g} ms"
    error = data.get("error")
    if error:
        line += f": {str(error)[:LOGGED_ERROR_CHARS]}"
    log.info("%s", line, extra={**extra, "outcome": outcome.suffix})


def missing_agent(task: Task, known: list[str]) -> Outcome:
    name = task.payload.get("agent")
    return Outcome(
        FAILED,
        {
            "error": f"agent {name!r} is not registered in this deploy "
            f"(registered: {', '.join(known) or 'none'})",
            "permanent": True,
            "agent_missing": True,
        },
    )


class Abandoned(Exception):
    """The worker lost the call's lease and cancelled its async agent: nothing to record."""


async def perform(
    agent: Agent,
    task: Task,
    on_late_result: Callable[[Outcome], None] | None = None,
    beat: Callable[[Any], None] | None = None,
    ctx: Context | None = None,
) -> Outcome:
    """Run `agent` for `task` within the call's timeout and describe what happened;
    `beat` receives the agent's `ctx.heartbeat` (see `runtime.heartbeats`).

    Raises `Abandoned` when the worker lost the lease (`ctx.lease_lost`) and cancelled an
    async agent; a sync agent cannot be interrupted, so its answer is returned as usual."""
    ctx = ctx or context_for(task, beat)
    started = time.perf_counter()
    args: tuple[Any, ...] = (ctx,)
    try:
        if agent.input_type is not None:  # checked at start; a failure here is permanent
            args = (ctx, typed_input(agent, ctx))
        if agent.is_async:
            value = await _run_async(agent, args)
        else:
            value = await _run_in_thread(agent, args, task, on_late_result)
    except _CallTimedOut:
        return Outcome(TIMED_OUT, {"error": f"no answer within {ctx.timeout:g}s", **_took(started)})
    except Abandoned:
        raise
    except Exception as exc:
        return _failure(exc, agent, task, started)
    return _success(value, task, started)


def typed_input(agent: Agent, ctx: Context) -> Any:
    """The input as the agent's annotated type (a plan started before the type changed may
    no longer fit: that is permanent, retrying cannot help)."""
    assert agent.input_type is not None
    try:
        return build(agent.input_type, ctx.input, f"the input of agent {agent.name}")
    except InputError as exc:
        raise PermanentError(str(exc)) from None


class _CallTimedOut(Exception):
    """The call outlived its step's timeout (not the agent's own client giving up, which is
    classified like any other exception: uncertain)."""


async def _run_async(agent: Agent, args: tuple[Any, ...]) -> Any:
    ctx = args[0]
    scope = asyncio.timeout(ctx.timeout)
    try:
        async with scope:
            job = asyncio.ensure_future(agent.fn(*args))
            ctx._fence.on_lost(job.cancel)
            try:
                return await job
            except asyncio.CancelledError:
                if ctx.lease_lost and not scope.expired():
                    raise Abandoned from None
                raise
    except TimeoutError:
        if scope.expired():
            raise _CallTimedOut from None
        raise


def _took(started: float) -> dict[str, Any]:
    return {"duration_ms": round((time.perf_counter() - started) * 1000, 2)}


def _success(value: Any, task: Task, started: float) -> Outcome:
    if task.kind == PROBE:
        answer = _probe_answer(value)
        if answer is None:
            error = f"the probe returned {type(value).__name__}; return a ProbeAnswer"
            return Outcome(FAILED, {"error": error, "permanent": False, **_took(started)})
        value = {"answer": answer.answer, "result": answer.result}
        try:
            encode_json(value, "probe answer")
        except InputError as exc:
            return Outcome(FAILED, {"error": str(exc), "permanent": False, **_took(started)})
        return Outcome(SUCCEEDED, {**value, **_took(started)})
    try:
        encode_json(value, f"the result of agent {task.payload.get('agent')}")
    except InputError as exc:
        return Outcome(FAILED, {"error": str(exc), "permanent": True, **_took(started)})
    return Outcome(SUCCEEDED, {"result": value, **_took(started)})


def _probe_answer(value: Any) -> ProbeAnswer | None:
    if isinstance(value, ProbeAnswer):
        return value
    if value in ("done", "not_done", "unknown"):
        return ProbeAnswer(value)
    return None


def _failure(exc: BaseException, agent: Agent, task: Task, started: float) -> Outcome:
    """A call that raised: definitely not done (`failed`) or possibly done (`uncertain`),
    by `core.classify`; whether to stop retrying is the retry policy's business."""
    payload = task.payload
    policy = RetryPolicy(
        permanent=tuple(payload.get("permanent", ())),
        transient=tuple(payload.get("transient", ())),
    )
    overrides = Overrides(
        tuple(payload.get("not_done", ())), tuple(payload.get("uncertain", ())), agent.classify
    )
    try:
        verdict = classify(exc, overrides)
    except Exception as broken:  # a user's classifier that raises must not lose the outcome
        verdict = UNCERTAIN_VERDICT
        log.error(
            "the classifier of agent %s raised %r; the outcome counts as uncertain",
            agent.name,
            broken,
        )
    retry_after = exc.retry_after if isinstance(exc, TransientError) else None
    if verdict == PERMANENT:
        permanent = True
    elif isinstance(exc, TransientError | OutcomeUnknown):
        permanent = False
    else:
        permanent = policy.is_permanent(exc)
    # Recorded forever and shown by explain and the dashboard: no connection password.
    message = redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    data: dict[str, Any] = {
        "error": message[:MAX_ERROR_CHARS],
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "permanent": permanent,
        **_took(started),
    }
    if retry_after is not None:
        data["retry_after"] = float(retry_after)
    if verdict == UNCERTAIN_VERDICT and task.kind != PROBE:
        return Outcome(UNCERTAIN, data)  # may have taken effect: probe, and undo on rollback
    return Outcome(FAILED, data)


class AgentThreads:
    """Threads for sync agents: an idle one is reused, a new one starts whenever none is
    idle, and a thread idle for `idle_seconds` exits.

    Not a fixed-size pool on purpose: a thread cannot be interrupted, so a hung agent keeps
    its thread, and with a fixed pool enough hung calls would starve every later one.
    Reuse matters for speed: starting a thread costs about as much as a no-op step.
    """

    def __init__(self, idle_seconds: float = 30.0) -> None:
        self.idle_seconds = idle_seconds
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a job (a job put for them is theirs)

    def submit(self, job: Callable[[], None], name: str) -> None:
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
                self._jobs.put(job)
                return
        threading.Thread(target=self._serve, args=(job,), name=name, daemon=True).start()

    def _serve(self, job: Callable[[], None]) -> None:
        while True:
            job()
            with self._lock:
                self._idle += 1
            while True:
                try:
                    job = self._jobs.get(timeout=self.idle_seconds)
                    break
                except queue.Empty:
                    with self._lock:  # a submitter may have counted on us just now
                        if self._jobs.empty():
                            self._idle -= 1
                            return


_THREADS = AgentThreads()


async def _run_in_thread(
    agent: Agent,
    args: tuple[Any, ...],
    task: Task,
    on_late_result: Callable[[Outcome], None] | None,
) -> Any:
    """Run a sync agent on an agent thread; if it outlives its timeout, report it late.

    A thread cannot be interrupted, so a hung sync agent is abandoned rather than killed
    (its thread stays with it; see `AgentThreads`). A call given up by its caller — its
    timeout passed, its heartbeat went silent, the worker stopped — that later succeeds
    is reported through `on_late_result`, never dropped: its effect happened.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    lock = threading.Lock()
    state = {"abandoned": False}
    started = time.perf_counter()

    def late(value: Any) -> None:
        if on_late_result is not None:
            on_late_result(_success(value, task, started))

    def target() -> None:
        try:
            value = agent.fn(*args)
        except BaseException as exc:
            error: BaseException | None = exc
            value = None
        else:
            error = None
        with lock:
            abandoned = state["abandoned"]
        if abandoned:
            if error is None:
                late(value)
            return

        def settle() -> None:
            if future.cancelled():  # given up between the answer and this callback
                if error is None:
                    loop.run_in_executor(None, late, value)
                return
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

        # If the loop closed while this call ran, there is nobody to tell; the lease expires.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle)

    def abandon() -> None:
        with lock:
            state["abandoned"] = True

    context = contextvars.copy_context()  # the attempt's span, for the agent's own spans
    _THREADS.submit(functools.partial(context.run, target), name=f"agent-{agent.name}")
    scope = asyncio.timeout(args[0].timeout)  # cancels only the future, not the thread
    try:
        async with scope:
            return await future
    except TimeoutError:
        if not scope.expired():
            raise  # the agent's own TimeoutError: classified like any exception
        abandon()
        raise _CallTimedOut from None
    except asyncio.CancelledError:
        abandon()  # e.g. its heartbeat went silent (runtime.heartbeats.watch)
        raise
