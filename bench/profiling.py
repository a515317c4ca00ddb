"""Where a worker's time goes: py-spy samples of a running worker process, summarised.

`py-spy record --format raw` writes collapsed stacks ("frame;frame;frame count"); the
summary attributes each sample to a coarse bucket (waiting on PostgreSQL, SQLite, the
thread pool, Python in the engine, JSON, the agent thread...) by looking at the frames.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# Ordered: the first bucket whose marker appears in a stack (innermost first) wins.
BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("waiting on PostgreSQL (socket)", ("wait_c", "_wait_conn", "wait_select", "wait_epoll")),
    ("SQLite (execute/commit)", ("sqlite3", "(sqlite.py)")),
    ("psycopg client (encode/parse)", ("psycopg/", "psycopg_pool/")),
    ("JSON encode/decode", ("json/", "jsoncodec.py")),
    ("supervisor decision (pure)", ("supervise.py", "progress.py", "facts.py", "model.py")),
    ("engine bookkeeping", ("engine.py", "writes.py", "store/base.py", "store/postgres.py")),
    ("agent call + thread per call", ("calls.py", "threading.py")),
    ("worker loop / asyncio", ("worker.py", "asyncio/", "concurrent/futures")),
]


@dataclass
class Profile:
    samples: int = 0
    buckets: Counter[str] = field(default_factory=Counter)
    top_self: Counter[str] = field(default_factory=Counter)
    path: Path | None = None

    def share(self, bucket: str) -> float:
        return self.buckets[bucket] / self.samples if self.samples else 0.0

    def lines(self, top: int = 8) -> list[str]:
        out = [f"{self.samples} samples (py-spy, active threads only)"]
        for name, count in self.buckets.most_common():
            out.append(f"{count / self.samples:6.1%}  {name}")
        out.append("hottest frames (self time):")
        for name, count in self.top_self.most_common(top):
            out.append(f"{count / self.samples:6.1%}  {name}")
        return out


def py_spy() -> str | None:
    """The py-spy executable: next to this Python (a venv), else on PATH."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def available() -> bool:
    return py_spy() is not None


def start(
    pid: int, seconds: float, out: Path, *, idle: bool = False, gil: bool = False
) -> subprocess.Popen[bytes]:
    """Start sampling process `pid` for `seconds` into `out` (collapsed stacks)."""
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed (pip install '.[bench]')")
    cmd = [
        exe,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        "200",
        "--format",
        "raw",
        "--output",
        str(out),
        "--nonblocking",
    ]
    if idle:
        cmd.append("--idle")
    if gil:
        cmd.append("--gil")  # only the thread holding the GIL: where Python CPU goes
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _bucket(frames: list[str]) -> str:
    for frame in reversed(frames):  # innermost first
        for name, markers in BUCKETS:
            if any(marker in frame for marker in markers):
                return name
    return "other"


def summarise(path: Path) -> Profile:
    profile = Profile(path=path)
    if not path.exists():
        return profile
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        profile.samples += count
        profile.buckets[_bucket(frames)] += count
        profile.top_self[frames[-1]] += count
    return profile
