"""Two webhooks in any order: "checkout completed" and "subscription created" come from two
providers, in either order, or one never comes. The account is activated when both arrive
healthy; when one reports a failure the checkout is refunded and the workflow ends failed;
when one is missing at the deadline it ends failed saying which.

A custom supervisor (a pure function of the facts and `now`) drives it; the webhooks meet in
one workflow through signal-with-start on the customer's key.
Run: python examples/webhooks.py [--db sqlite:///x.db]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
from pathlib import Path
from typing import Any

from steadyhand import (
    App,
    CallAgent,
    Client,
    Complete,
    Context,
    Decision,
    Fail,
    RetryPolicy,
    Status,
    WaitUntil,
    Worker,
    WorkerOptions,
    WorkflowView,
    call_progress,
    open_store,
)

CHECKOUT, SUBSCRIPTION = "checkout.completed", "subscription.created"
ACTION = "action"  # the phase of an ordinary call (others: "compensation", "probe")
RETRY = RetryPolicy(max_attempts=5, initial_backoff=0.05, max_backoff=1.0)
app = App()
ACTIVATED: list[str] = []  # stands in for the account service: who was activated
REFUNDED: list[str] = []  # stands in for the payment provider: which checkouts were refunded


@app.agent()
def activate_account(ctx: Context) -> dict[str, Any]:
    """The happy path's one effect (idempotent by the customer: activating twice is a no-op)."""
    customer = ctx.input["customer"]
    if customer not in ACTIVATED:
        ACTIVATED.append(customer)
    return {"activated": customer}


@app.agent()
def refund_checkout(ctx: Context) -> dict[str, Any]:
    """The failure path: give the money back when the subscription could not be created."""
    customer = ctx.input["customer"]
    if customer not in REFUNDED:
        REFUNDED.append(customer)
    return {"refunded": customer}


def _call(facts: WorkflowView, now: float, step: str, agent: str, done: str) -> Decision | None:
    """Run `agent` once as `step` (retried under RETRY); None once it has succeeded."""
    progress = call_progress(facts, ACTION, step, RETRY)
    if progress.status == "succeeded":
        return None
    if progress.status in ("not_started", "in_flight"):
        call = CallAgent(ACTION, step, max(progress.attempt, 1), agent, 10.0)
        return Decision((call,), f"{done}: calling {agent}")
    if progress.status == "retry" and progress.retry_at is not None and progress.retry_at > now:
        return Decision((WaitUntil(progress.retry_at),), f"{agent} failed; backing off")
    if progress.status == "retry":
        call = CallAgent(ACTION, step, progress.attempt + 1, agent, 10.0)
        return Decision((call,), f"{agent} failed ({progress.reason}); retrying")
    reason = f"{agent} could not be done: {progress.reason}"
    return Decision((Fail(reason),), reason)


@app.supervisor()
def onboarding(facts: WorkflowView, now: float) -> Decision:
    """Both webhooks healthy: activate. One failed: refund, then fail. Deadline: fail."""
    events = {name: facts.event(name) for name in (CHECKOUT, SUBSCRIPTION)}
    failed = [n for n, e in events.items() if e and (e.get("payload") or {}).get("ok") is False]
    if failed:
        why = f"{failed[0]} reported a failure"
        pending = _call(facts, now, "refund", "refund_checkout", why)
        return pending or Decision((Fail(f"{why}; the checkout was refunded"),), why)
    missing = [n for n, e in events.items() if e is None]
    if not missing:
        pending = _call(facts, now, "activate", "activate_account", "both webhooks arrived")
        return pending or Decision((Complete({"customer": facts.input["customer"]}),), "done")
    deadline = facts.created_at + float(facts.input.get("deadline", 3600))
    if now >= deadline:
        reason = f"{', '.join(missing)} never arrived (deadline passed)"
        return Decision((Fail(reason),), reason)
    return Decision((WaitUntil(deadline),), f"waiting for {', '.join(missing)}")


app.process("onboarding", onboarding)


def webhook(client: Client, event: str, customer: str, ok: bool = True, **start: Any) -> str:
    """What a webhook handler does: record the event on the customer's workflow, starting it
    if this is the first one, with the delivery id so a redelivery is recorded once."""
    sent = client.signal(
        event,
        {"ok": ok},
        key=f"onboarding:{customer}",
        dedupe_key=f"{event}:{customer}",
        start="onboarding",
        start_input={"customer": customer, **start},
    )
    return sent.workflow_id


def main(argv: list[str] | None = None) -> int:
    """Play four stories with a worker on a background thread and print how each ended."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--db", default=None, help="store URL (default: a temporary SQLite file)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(args.db or f"sqlite:///{Path(tmp) / 'webhooks.db'}")
        client = Client(app, store)
        worker = Worker(app, store, WorkerOptions(concurrency=4, poll_interval=0.02))
        thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False})
        thread.start()
        try:
            stories = {
                "ada": [(CHECKOUT, True), (SUBSCRIPTION, True)],
                "bob": [(SUBSCRIPTION, True), (CHECKOUT, True)],
                "cy": [(CHECKOUT, True), (SUBSCRIPTION, False)],
                "dee": [(CHECKOUT, True)],
            }
            for customer, events in stories.items():
                for event, ok in events:
                    workflow_id = webhook(client, event, customer, ok, deadline=1.0)
                status: Status = client.wait(workflow_id, timeout=15)
                print(f"{customer}: {status.state} — {status.reason or status.result}")
        finally:
            worker.stop()
            thread.join()
            store.close()
    print(f"activated {ACTIVATED}, refunded {REFUNDED}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
