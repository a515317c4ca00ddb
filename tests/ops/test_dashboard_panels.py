"""The overview's grouped endings and workers panel, search by id or key, a failed page
that says its reason once (both backends, real HTTP), and every page at phone width in
headless Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from steadyhand import Client, open_store
from steadyhand.ops.endings import reason_label
from steadyhand.store import Store
from steadyhand.web import DashboardOptions, create_app
from tests.apps.shop import app
from tests.conftest import running_worker
from tests.ops.conftest import serve
from tests.ops.test_dashboard import CHROMIUM, CHROMIUM_ARGS, _browser

TOKEN = "panel-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def shop(store: Store) -> dict[str, str]:
    """Three declined orders, one undeliverable, one that failed, one completed."""
    client = Client(app, store)
    inputs = {
        "d1": {"decline": True},
        "d2": {"decline": True},
        "d3": {"decline": True},
        "lost": {"undeliverable": True},
        "failed": {"undeliverable": True, "refund_broken": True},
        "ok": {"amount": 1},
    }
    ids = {n: client.start("order", i, key=f"key-{n}").workflow_id for n, i in inputs.items()}
    with running_worker(app, store):
        for workflow_id in ids.values():
            client.wait(workflow_id, timeout=30)
    return ids


@pytest.fixture
def base(store: Store) -> Iterator[str]:
    with serve(create_app(store, DashboardOptions(token=TOKEN, refresh=0))) as url:
        yield url


def test_reasons_are_grouped_without_what_differs() -> None:
    one = "rolled back (step car permanent failure: PermanentError: car: refused 4f2a9c1b7d3e5f60)"
    two = "rolled back (step car permanent failure: PermanentError: car: refused 0a1b2c3d4e5f6a7b)"
    assert reason_label(one) == reason_label(two) == "car: refused …"
    assert reason_label("could not compensate hotel (gave up after 4 attempts)") == (
        "could not compensate hotel"
    )
    assert reason_label("x" * 300).endswith("…") and len(reason_label("x" * 300)) <= 90


def test_the_overview_groups_endings_by_reason_and_lists_workers(
    store: Store, shop: dict[str, str], base: str
) -> None:
    page = httpx.get(base + "/", headers=AUTH)
    assert page.status_code == 200
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text))
    assert "4 rolled back : charge: card declined 3 , ship: no such address 1" in text
    assert "1 failed : could not compensate charge 1" in text
    workers = re.findall(r'<tr data-worker="([^"]+)">', page.text)
    assert len(workers) >= 1, "the worker that ran the orders is listed"
    assert "stopped" in page.text
    # Each worker's measured offset from the store's clock (issue 20), e.g. "+0.004 s".
    assert re.search(r"[+-]\d+\.\d{3} s</td>", page.text), "the clock offset is shown"


def test_search_finds_by_key_by_id_and_by_id_prefix(
    store: Store, shop: dict[str, str], base: str
) -> None:
    by_key = httpx.get(base + "/workflows", params={"q": "key-lost"}, headers=AUTH)
    assert by_key.status_code == 303 and by_key.headers["location"] == f"/workflows/{shop['lost']}"
    by_id = httpx.get(base + "/workflows", params={"q": shop["ok"]}, headers=AUTH)
    assert by_id.headers["location"] == f"/workflows/{shop['ok']}"
    prefix = shop["ok"][:8]
    many = httpx.get(base + "/workflows", params={"q": prefix}, headers=AUTH)
    assert many.status_code == 200 and shop["ok"] in many.text
    none = httpx.get(base + "/workflows", params={"q": "no-such-thing"}, headers=AUTH)
    assert none.status_code == 200 and "data-state" not in none.text.split("<tbody>")[-1]


def test_a_failed_page_says_its_reason_once(store: Store, shop: dict[str, str], base: str) -> None:
    page = httpx.get(f"{base}/workflows/{shop['failed']}", headers=AUTH)
    reason = Client(app, store).status(shop["failed"]).reason or ""
    assert reason and page.text.count(reason[:60]) == 1, "the verdict carries the reason"


def test_every_page_fits_a_phone_400_px_wide(store: Store, shop: dict[str, str]) -> None:
    sync_api = _browser()
    store_url = store.url
    viewer = open_store(store_url)
    options = DashboardOptions(token=None, refresh=0)
    try:
        with serve(create_app(viewer, options)) as url, sync_api.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            page = browser.new_page(viewport={"width": 400, "height": 800})
            for path in ("/", "/workflows", f"/workflows/{shop['failed']}", "/workflows?q=key-ok"):
                page.goto(url + path)
                page.wait_for_selector("main")
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= 400, f"{path} is {width}px wide at a 400px viewport"
            browser.close()
    finally:
        viewer.close()
