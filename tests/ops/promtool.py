"""Run Prometheus's own linter, `promtool` (Debian's `prometheus` package ships it), on what
steadyhand exports. Skipped where it is not installed, unless STEADYHAND_REQUIRE_PROMTOOL=1
(CI installs it and sets that, so there the check cannot be skipped)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("STEADYHAND_REQUIRE_PROMTOOL") == "1":
            pytest.fail("promtool is required but missing: apt-get install prometheus")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return path


def promtool_check_metrics(text: str) -> str:
    """promtool's complaints about a scrape ("" when it has none)."""
    done = subprocess.run(
        [promtool(), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return (done.stdout + done.stderr).strip() if done.returncode else ""
