"""The dashboard over real HTTP (uvicorn): who may start it, log in, read, and act; CSRF and
read-only; and, in headless Chromium, an operator retrying a failed workflow.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from steadyhand import Client, open_store
from steadyhand.cli.main import main
from steadyhand.cli.ops import check_access
from steadyhand.core.stuck import StuckRule
from steadyhand.ops.stats import collect
from steadyhand.store import Store
from steadyhand.web import DashboardOptions, create_app
from tests.apps.scripted import app
from tests.ops.conftest import FAIL_SCRIPT, Scenario, run_trips, serve
from tests.waiting import eventually

TOKEN = "t0ken-for-tests"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture
def store(scenario: Scenario) -> Iterator[Store]:
    s = open_store(scenario.url)
    yield s
    s.close()


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def test_it_refuses_to_start_without_a_token_unless_local_and_explicit() -> None:
    assert check_access("0.0.0.0", "s" * 32, no_auth=False) is None
    assert check_access("127.0.0.1", None, no_auth=True) is None
    assert "needs a token" in str(check_access("127.0.0.1", None, no_auth=False))
    assert "only allowed on 127.0.0.1" in str(check_access("0.0.0.0", None, no_auth=True))
    runner = CliRunner()
    env = {"STEADYHAND_DASHBOARD_TOKEN": ""}
    refused = runner.invoke(main, ["dashboard", "--host", "0.0.0.0", "--no-auth"], env=env)
    assert refused.exit_code == 2 and "only allowed on 127.0.0.1" in refused.output
    assert runner.invoke(main, ["dashboard"], env=env).exit_code == 2


def test_every_page_needs_the_token(store: Store, scenario: Scenario) -> None:
    with serve(create_app(store, DashboardOptions(token=TOKEN))) as base:
        with httpx.Client(base_url=base) as anonymous:
            assert anonymous.get("/healthz").text == "ok"
            page = anonymous.get(f"/workflows/{scenario.failed}")
            assert page.status_code == 303
            assert page.headers["location"].startswith("/login?next=%2Fworkflows%2F")
            assert anonymous.get("/metrics").status_code == 401
            post = anonymous.post(f"/workflows/{scenario.failed}/retry", data={"csrf": "x"})
            assert post.status_code == 401
            wrong = anonymous.post("/login", data={"token": "guess"})
            assert wrong.status_code == 401 and "not the one" in wrong.text
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.get(f"{base}/metrics", headers=bearer).status_code == 200
        with httpx.Client(base_url=base) as person:
            login = person.post("/login?next=/workflows", data={"token": TOKEN})
            assert login.status_code == 303 and login.headers["location"] == "/workflows"
            cookie = login.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie
            for path in ("/", "/workflows", "/workflows?state=failed", "/metrics"):
                assert person.get(path).status_code == 200, path
            listed = person.get("/workflows?state=failed").text
            assert scenario.failed in listed and scenario.completed not in listed
            shown = person.get(f"/workflows/{scenario.failed}")
            assert "could not compensate hotel" in shown.text
            assert "default-src 'self'" in shown.headers["content-security-policy"]
            assert person.get("/workflows/nope").status_code == 404
            assert person.get("/workflows?since=someday").status_code == 400


def test_actions_need_the_session_csrf_token_and_become_operator_facts(
    store: Store, scenario: Scenario
) -> None:
    client = Client(app, store)
    running = client.start("trip", {"ledger": scenario.ledger}).workflow_id  # nobody runs it
    with serve(create_app(store, DashboardOptions(token=TOKEN))) as base:
        with httpx.Client(base_url=base) as person:
            person.post("/login", data={"token": TOKEN})
            csrf = csrf_of(person.get(f"/workflows/{running}").text)
            cancel = f"/workflows/{running}/cancel"
            assert person.post(cancel, data={"reason": "x"}).status_code == 403
            assert person.post(cancel, data={"csrf": "0" * 64}).status_code == 403
            evil = {"Origin": "http://evil.example"}
            assert person.post(cancel, data={"csrf": csrf}, headers=evil).status_code == 403
            assert client.status(running).state == "running"
            done = person.post(cancel, data={"csrf": csrf, "reason": "customer called"})
            assert done.status_code == 303 and "cancel+recorded" in done.headers["location"]
        with httpx.Client(base_url=base) as other:  # another session's token is worthless
            other.post("/login", data={"token": TOKEN})
            refused = other.post(f"/workflows/{scenario.failed}/retry", data={"csrf": csrf})
            assert refused.status_code == 403
    fact = client.view(running).latest("cancel_requested")
    assert fact is not None and fact.get("reason") == "customer called"
    assert str(fact.get("by")).startswith("dashboard")
    assert client.status(scenario.failed).state == "failed"


def test_read_only_shows_no_buttons_and_refuses_actions(store: Store, scenario: Scenario) -> None:
    options = DashboardOptions(token=TOKEN, read_only=True)
    with serve(create_app(store, options)) as base, httpx.Client(base_url=base) as person:
        person.post("/login", data={"token": TOKEN})
        page = person.get(f"/workflows/{scenario.failed}").text
        assert "read-only" in page and 'id="retry"' not in page
        refused = person.post(f"/workflows/{scenario.failed}/retry", data={"csrf": "x"})
        assert refused.status_code == 403 and "read-only" in refused.text


def test_without_auth_it_still_checks_csrf(store: Store, scenario: Scenario) -> None:
    with serve(create_app(store, DashboardOptions())) as base, httpx.Client(base_url=base) as web:
        page = web.get(f"/workflows/{scenario.failed}")
        assert page.status_code == 200 and "steadyhand_session" in page.headers["set-cookie"]
        assert web.post(f"/workflows/{scenario.failed}/retry").status_code == 403
        assert httpx.post(f"{base}/workflows/{scenario.failed}/retry").status_code == 403


def _browser() -> Any:
    """Playwright's sync API if Debian's chromium is here; skip (or fail in CI) otherwise."""
    reason = None
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        from playwright import sync_api
    except ImportError:
        reason = "playwright is not installed (pip install -e '.[test]')"
    if reason:
        if os.environ.get("STEADYHAND_REQUIRE_BROWSER") == "1":
            pytest.fail(f"the browser test is required but {reason}")
        pytest.skip(reason)
    return sync_api


def test_an_operator_retries_a_failed_workflow_in_a_real_browser(tmp_path: Path) -> None:
    sync_api = _browser()
    url = f"sqlite:///{tmp_path / 'steadyhand.db'}"
    ledger = str(tmp_path / "ledger.db")
    scripts: list[dict[str, object]] = [{}, {"hotel": ["transient", "transient"]}, {}, {}]
    scripts += [{"car": ["permanent"]}, FAIL_SCRIPT, {"flight": ["transient"]}]
    run_trips(url, ledger, scripts)
    store = open_store(url)
    Client(app, store).start("one", {"ledger": ledger})  # nobody will run it: stuck
    shots = DOCS if os.environ.get("STEADYHAND_SCREENSHOTS") == "1" else tmp_path
    options = DashboardOptions(token=TOKEN, refresh=0, stuck=StuckRule(0.5))
    eventually(lambda: collect(store, time.time(), StuckRule(0.5)).stuck == 1, what="stuck")
    try:
        with serve(create_app(store, options)) as base, sync_api.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.goto(base + "/")
            page.fill("input[name=token]", TOKEN)
            page.click("button[type=submit]")
            page.wait_for_selector(".counts")
            assert page.inner_text("a.count[data-state=failed] .n") == "1"
            assert page.inner_text("a.count[data-state=stuck] .n") == "1"
            page.screenshot(path=str(shots / "dashboard-overview.png"), full_page=True)
            page.click("header nav >> text=workflows")
            page.wait_for_selector("table.rows tr[data-state=completed]")
            assert page.locator("table.rows tbody tr").count() == 8
            page.screenshot(path=str(shots / "dashboard-workflows.png"), full_page=True)
            page.select_option("select[name=state]", "failed")
            page.click("form.filters button[type=submit]")
            page.wait_for_url("**/workflows?state=failed**")
            assert page.locator("table.rows tbody tr").count() == 1
            page.click("table.rows tr[data-state=failed] a")
            page.wait_for_selector("#retry")
            assert page.inner_text("#state").startswith("failed")
            page.screenshot(path=str(shots / "dashboard-workflow.png"), full_page=True)
            page.fill("form[action$=retry] input[name=reason]", "hotel API is back")
            page.click("#retry")
            page.wait_for_selector("#notice")
            assert "retry recorded" in page.inner_text("#notice")
            assert page.inner_text("#state").startswith("compensating")
            assert "retry requested by dashboard" in page.inner_text("ol.timeline")
            browser.close()
    finally:
        store.close()


def test_the_failed_list_shows_a_supervisors_error_and_the_page_offers_cancel(
    store: Store, scenario: Scenario
) -> None:
    from steadyhand import App, Decision, WorkflowView

    buggy_app = App()

    @buggy_app.supervisor()
    def buggy(view: WorkflowView, now: float) -> Decision:
        return {}["missing"]  # type: ignore[no-any-return, index]

    buggy_app.process("buggy", buggy)
    failed = Client(buggy_app, store).start("buggy", {}).workflow_id
    options = DashboardOptions(token=TOKEN)
    with serve(create_app(store, options)) as base, httpx.Client(base_url=base) as person:
        person.post("/login", data={"token": TOKEN})
        for path in ("/", "/workflows?state=failed"):
            listed = person.get(path).text
            row = listed[listed.index(f'data-id="{failed}"') :].split("</tr>")[0]
            assert "raised KeyError" in row, path
            assert "test_dashboard.py:" in row and "in buggy" in row, "where it was raised"
        page = person.get(f"/workflows/{failed}").text
        assert f'action="/workflows/{failed}/cancel"' in page, "a failed page offers cancel"
        assert "supervisor buggy raised KeyError" in page, "explain tells the bug"
        done = person.post(
            f"/workflows/{failed}/cancel", data={"csrf": csrf_of(page), "reason": "undo"}
        )
        assert done.status_code == 303 and "cancel+recorded" in done.headers["location"]
    view = Client(buggy_app, store).view(failed)
    assert view.round == 1 and view.latest("cancel_requested") is not None
