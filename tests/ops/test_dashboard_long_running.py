"""The dashboard's overview shows schedules (what, when, next tick or paused, last run) and
services held by an operator, on both backends, over real HTTP."""

from __future__ import annotations

import httpx
from click.testing import CliRunner

from steadyhand import Client, open_store
from steadyhand.cli.main import main
from steadyhand.engine.engine import Engine
from steadyhand.web import DashboardOptions, create_app
from tests.apps import long_running, scheduled
from tests.ops.conftest import serve

TOKEN = "t0ken-for-tests"


def test_the_overview_shows_schedules_and_held_services(store_url: str) -> None:
    store = open_store(store_url)
    try:
        Engine(store, {}, plans=scheduled.app.plans).publish_schedules(scheduled.app.schedules)
        client = Client(long_running.app, store)
        client.engine.publish_services(long_running.app.services)
        assert client.hold_service("printer", "toner swap", by="ops")
        cli = CliRunner()
        ref = "tests.apps.scheduled:app"
        triggered = cli.invoke(
            main, ["schedules", "trigger", "latest", "--app", ref, "--db", store_url]
        )
        assert triggered.exit_code == 0, triggered.output
        assert cli.invoke(main, ["schedules", "pause", "none", "--db", store_url]).exit_code == 0
        with serve(create_app(store, DashboardOptions(token=TOKEN))) as base:
            page = httpx.get(f"{base}/", headers={"Authorization": f"Bearer {TOKEN}"})
        assert page.status_code == 200
        html = page.text
        schedules = html.split('id="schedules"', 1)[1]
        for name in ("all", "latest", "none"):
            assert f'data-schedule="{name}"' in schedules
        assert "every 1s" in schedules

        def row(name: str) -> str:
            return schedules.split(f'data-schedule="{name}"', 1)[1].split("</tr>", 1)[0]

        assert "paused" in row("none") and "paused" not in row("all")
        assert "/workflows/" in row("latest") and "never" in row("all")
        services = html.split('id="services"', 1)[1].split("</section>", 1)[0]
        assert 'data-service="printer"' in services
        assert "held" in services and "toner swap" in services
    finally:
        store.close()
