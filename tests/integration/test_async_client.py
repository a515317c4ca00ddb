"""`AsyncClient` on both backends: every verb, `wait` raising TimeoutError, and on PostgreSQL
`wait` woken by the store's notification rather than by polling."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import steadyhand
from steadyhand import AsyncClient, InputError, NotFoundError
from steadyhand.store import Store
from tests.apps.shop import app
from tests.conftest import running_worker


def test_async_client_is_exported_and_made_by_the_app(store_url: str) -> None:
    assert steadyhand.AsyncClient is AsyncClient

    async def scenario() -> str:
        async with app.connect_async(store_url) as client:
            return (await client.start("order", {"amount": 1})).workflow_id

    assert asyncio.run(scenario())


def test_every_verb_of_the_async_client(store: Store) -> None:
    async def scenario() -> dict[str, Any]:
        client = AsyncClient(app, store)
        out: dict[str, Any] = {}
        many = await client.start_many(
            [("order", {"amount": 1}, "k-1"), ("order", {"amount": 2}, None), ("approval", {}, "a")]
        )
        out["created"] = [s.created for s in many]
        again = await client.start("order", {"amount": 1}, key="k-1")
        out["same"] = again.workflow_id == many[0].workflow_id
        ok, approval = many[1].workflow_id, many[2].workflow_id
        out["ok"] = (await client.wait(ok, timeout=30)).state
        sent = await client.signal("approved", {"by": "ann"}, key="a", dedupe_key="d")
        out["signalled"] = (sent.workflow_id == approval, sent.recorded)
        out["approval"] = (await client.wait(approval, timeout=30)).state
        out["status"] = (await client.status(ok)).result
        waiting = (await client.start("approval", {})).workflow_id
        out["cancel"] = (await client.cancel(waiting, "changed my mind")).state
        out["cancelled"] = (await client.wait(waiting, timeout=30)).state
        broken = {"undeliverable": True, "refund_broken": True}
        failed = (await client.start("order", broken)).workflow_id
        out["failed"] = (await client.wait(failed, timeout=30)).state
        out["retried"] = (await client.retry(failed, "try again")).state
        out["list"] = {r.id for r in (await client.list(name="order", state="completed")).rows}
        out["ids"] = {ok, many[0].workflow_id}
        out["view"] = (await client.view(ok)).name
        with pytest.raises(NotFoundError):
            await client.status("nope")
        with pytest.raises(InputError):
            await client.list(state="done")
        return out

    with running_worker(app, store):
        out = asyncio.run(scenario())
    assert out["created"] == [True, True, True] and out["same"]
    assert out["ok"] == "completed" and out["status"]["charge"] == {"charged": 2}
    assert out["signalled"] == (True, True) and out["approval"] == "completed"
    assert out["cancel"] in ("running", "waiting", "compensating", "compensated")
    assert out["cancelled"] == "compensated"
    assert out["failed"] == "failed" and out["retried"] != "failed"
    assert out["list"] == out["ids"] and out["view"] == "order"


def test_wait_raises_timeout_error_when_the_workflow_outlives_it(store: Store) -> None:
    async def scenario() -> None:
        client = AsyncClient(app, store)
        waiting = (await client.start("approval", {})).workflow_id
        with pytest.raises(TimeoutError, match=r"still waiting after 0\.2s"):
            await client.wait(waiting, timeout=0.2)
        endings = store.endings()
        assert endings is not None and endings.waiting() == 0, "a waiter leaves nothing behind"

    with running_worker(app, store):
        asyncio.run(scenario())
    with pytest.raises(TimeoutError):
        steadyhand.Client(app, store).wait(
            steadyhand.Client(app, store).start("approval").workflow_id, timeout=0.1
        )


def test_wait_is_woken_by_the_store_not_by_polling(store: Store) -> None:
    """The waiter looks once, then sleeps with a recheck far beyond the test's timeout: only
    the store's notification of the ending (PostgreSQL's NOTIFY, SQLite's wake-up channel)
    can wake it for its last look."""
    looks: list[str] = []

    async def scenario() -> str:
        client = AsyncClient(app, store, recheck=600)
        status = client.status

        async def counted(workflow_id: str) -> Any:
            answer = await status(workflow_id)
            looks.append(answer.state)
            return answer

        client.status = counted  # type: ignore[method-assign]
        waiting = (await client.start("approval", {})).workflow_id
        waiter = asyncio.create_task(client.wait(waiting, timeout=60))
        while not looks:  # the waiter has looked once and is now asleep
            await asyncio.sleep(0.01)
        await client.signal("approved", workflow_id=waiting)
        final = await waiter
        await client.aclose(close_store=False)  # the worker still uses the store
        return final.state

    with running_worker(app, store):
        assert asyncio.run(scenario()) == "completed"
    # A look when the store's listener starts hearing (it wakes every waiter, since an end
    # may have passed unheard until then) may come between the first and the last.
    assert looks[0] == "waiting" and looks[-1] == "completed" and len(looks) <= 3
