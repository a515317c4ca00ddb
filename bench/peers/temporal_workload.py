"""The Temporal side's definitions (imported only where `temporalio` is installed).

Temporal refuses workflow classes defined inside a function, so they live at module level
here rather than in `temporal_bench`, which must import without `temporalio`.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="noop")
def noop() -> None:
    return None


@workflow.defn(name="ThreeSteps", sandboxed=False)
class ThreeSteps:
    @workflow.run
    async def run(self) -> None:
        for _ in range(3):
            await workflow.execute_activity("noop", start_to_close_timeout=timedelta(seconds=30))
