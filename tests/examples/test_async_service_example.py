"""The async web service example on both backends, over real HTTP: create an order, wait
for it through the store, approve it, list it, cancel another, refuse a bad one."""

from __future__ import annotations

import httpx
from examples.async_service import app, create_service

from steadyhand.store import Store
from tests.conftest import running_worker
from tests.ops.conftest import serve


def test_the_async_service_runs_orders_end_to_end(store: Store) -> None:
    with running_worker(app, store), serve(create_service(store.url)) as base:
        made = httpx.post(f"{base}/orders", json={"sku": "A-1", "quantity": 2})
        assert made.status_code == 202
        order = made.json()["id"]
        waiting = httpx.get(f"{base}/orders/{order}", params={"wait": "0.3"}).json()
        assert waiting["state"] in ("running", "waiting")
        assert httpx.post(f"{base}/orders/{order}/approve").json() == {"recorded": True}
        done = httpx.get(f"{base}/orders/{order}", params={"wait": "30"}, timeout=40).json()
        assert done["state"] == "completed"
        assert done["result"]["reserve"] == {"reserved": 2, "sku": "A-1"}
        listed = httpx.get(f"{base}/orders", params={"state": "completed"}).json()
        assert [row["id"] for row in listed["orders"]] == [order]
        other = httpx.post(f"{base}/orders", json={"sku": "B", "quantity": 1}).json()["id"]
        assert httpx.delete(f"{base}/orders/{other}").status_code == 200
        ended = httpx.get(f"{base}/orders/{other}", params={"wait": "30"}, timeout=40).json()
        assert ended["state"] == "compensated"
        bad = httpx.post(f"{base}/orders", json={"sku": "C", "quantity": "many"})
        assert bad.status_code == 422 and "quantity must be a whole number" in bad.text
        assert httpx.get(f"{base}/orders/nope").status_code == 404
