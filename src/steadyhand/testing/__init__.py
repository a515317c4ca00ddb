"""The test kit for workflows: run one in-process against fake agents on a virtual clock
(`Simulator`), and replay a recorded history against new code to catch non-determinism
before a deploy (`replay_history`, `assert_replays`). See docs/CODE_FIRST.md.
"""

from steadyhand.testing.history import ReplayReport, assert_replays, load_history, replay_history
from steadyhand.testing.results import Call, CallTimedOut, Event, Run
from steadyhand.testing.simulate import START_AT, Simulator

__all__ = [
    "START_AT",
    "Call",
    "CallTimedOut",
    "Event",
    "ReplayReport",
    "Run",
    "Simulator",
    "assert_replays",
    "load_history",
    "replay_history",
]
