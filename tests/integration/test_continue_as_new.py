"""`wf.continue_as_new` (issue 17): a long-lived workflow ends its run and starts the next
in one commit, with a fresh history; its key, starts and events follow it to the newest run."""

from __future__ import annotations

import time
from typing import Any

from steadyhand import App, Client, Context, Workflow
from steadyhand.store import Store
from tests.conftest import running_worker

app = App()


@app.agent()
def bill(ctx: Context) -> dict[str, Any]:
    return {"billed": ctx.input["month"]}


@app.workflow()
async def subscription(wf: Workflow, state: dict[str, Any]) -> dict[str, Any]:
    await wf.step(bill, {"month": state["month"]})
    if state.get("wait"):
        await wf.wait_for("renew")
    if state["month"] < state["until"]:
        wf.continue_as_new({**state, "month": state["month"] + 1})
    return {"billed_through": state["month"]}


@app.workflow()
async def parent(wf: Workflow, state: dict[str, Any]) -> Any:
    return await wf.child("subscription", {"month": 1, "until": 2})


def _newest(client: Client, workflow_id: str) -> str:
    while True:
        status = client.status(workflow_id)
        following = (status.result or {}).get("continued_as") if status.done else None
        if following is None:
            return workflow_id
        workflow_id = following


def _ended_for_good(client: Client, first: str) -> bool:
    status = client.status(_newest(client, first))
    return status.done and "continued_as" not in (status.result or {})


def test_each_run_starts_the_next_and_the_key_follows(store: Store) -> None:
    client = Client(app, store)
    first = client.start("subscription", {"month": 1, "until": 3}, key="sub-42").workflow_id
    with running_worker(app, store):
        deadline = time.monotonic() + 30
        while not _ended_for_good(client, first):
            assert time.monotonic() < deadline, "the runs did not finish"
            time.sleep(0.05)
    last = _newest(client, first)
    assert last == f"{first}~3"
    assert client.status(last).result == {"billed_through": 3}
    assert client.status(first).state == "completed"
    assert client.status(first).result == {"continued_as": f"{first}~2"}
    for run in (first, f"{first}~2", last):
        assert client.view(run).count("attempt_succeeded") == 1, "each run has its own history"
    continued = client.view(last).latest("continued_from")
    assert continued is not None and continued.get("workflow_id") == f"{first}~2"
    again = client.start("subscription", {"month": 1, "until": 3}, key="sub-42")
    assert again.workflow_id == last and not again.created, "the key names the newest run"


def test_an_event_sent_by_key_reaches_the_newest_run(store: Store) -> None:
    client = Client(app, store)
    first = client.start(
        "subscription", {"month": 1, "until": 2, "wait": True}, key="sub-7"
    ).workflow_id
    with running_worker(app, store):
        client.signal("renew", key="sub-7")
        deadline = time.monotonic() + 30
        while (
            not client.view(f"{first}~2").has("wait_began")
            if _exists(client, f"{first}~2")
            else True
        ):
            assert time.monotonic() < deadline, "the second run did not start waiting"
            time.sleep(0.05)
        client.signal("renew", key="sub-7")  # addressed by key: lands on run 2
        status = client.wait(f"{first}~2", timeout=30)
    assert status.state == "completed" and status.result == {"billed_through": 2}


def _exists(client: Client, workflow_id: str) -> bool:
    try:
        client.status(workflow_id)
    except Exception:
        return False
    return True


def test_a_child_cannot_continue_as_new(store: Store) -> None:
    client = Client(app, store)
    started = client.start("parent", {})
    with running_worker(app, store):
        deadline = time.monotonic() + 30
        child = f"{started.workflow_id}.subscription"
        while not (_exists(client, child) and client.status(child).done):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert client.status(child).state == "failed"
    assert "continue the parent instead" in (client.status(child).reason or "")
