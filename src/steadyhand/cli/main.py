"""The `steadyhand` command: run workers, start workflows, and look after them.

Exit codes: 0 success; 1 the store could not be reached; 2 bad usage or input;
3 a recorded history would not replay on this code (replay-check); 4 no such workflow;
5 the requested action does not apply (e.g. retry of a running one);
after waiting (`start --wait`, `watch`): 3 compensated, 6 failed, 7 still running.
Each command lives in the module of its kind; this module only assembles the group.
"""

from __future__ import annotations

import click

from steadyhand.chaos.command import chaos
from steadyhand.chaos.failover_command import failover
from steadyhand.cli import bulk, ops, run, verbs
from steadyhand.cli.archive import archive
from steadyhand.cli.replaycheck import replay_check
from steadyhand.cli.schedules import schedules
from steadyhand.cli.services import service
from steadyhand.demo.command import demo
from steadyhand.runtime import logs


@click.group()
@click.version_option(package_name="steadyhand")
@click.option("--log-level", default="INFO", show_default=True, help="DEBUG, INFO, WARNING…")
@click.option("--log-json", is_flag=True, help="Log one JSON object per line.")
def main(log_level: str, log_json: bool) -> None:
    """Durable sagas across unreliable remote services."""
    logs.configure(log_level, log_json)


for _command in (
    run.worker,
    run.serve,
    run.migrate,
    run.start,
    bulk.cancel,  # one workflow (run.cancel) or a selection
    bulk.retry,
    verbs.signal,
    verbs.watch,
    ops.list_command,
    ops.status,
    ops.explain,
    ops.stats,
    ops.dashboard,
    replay_check,
    archive,
    service,
    schedules,
    demo,  # the demo builds on the rest
    chaos,  # after the demo, whose parts it reuses
    failover,  # the chaos harness on a primary + standby it builds
):
    main.add_command(_command)
