"""Slot names: the one place that spells them.

A slot is a name unique within its workflow (a unique index holds it), which is how the
database, not the code, makes a second "attempt 2 of hotel scheduled", a second ending of a
round, or a second delivery of the same event impossible to record. Every writer (the
engine, the SQL API's functions, tests) builds slots here, so two spellings cannot drift.
"""

from __future__ import annotations

STARTED = "started"  # the workflow's first fact
PARENT_CANCEL = "cancel:parent"  # the parent asked this child to roll back (once)


def call_slot(phase: str, step: str, attempt: int, what: str) -> str:
    """Unique slot of a call's scheduling ("scheduled") or its outcome ("outcome")."""
    return f"{phase}:{step}:{attempt}:{what}"


def terminal_slot(round_: int) -> str:
    """One terminal fact per round: an operator's retry opens a new round."""
    return f"terminal:{round_}"


def retry_slot(round_: int) -> str:
    """One operator retry per round: the retry that opens round `round_`."""
    return f"retry:{round_}"


def child_slot(step: str) -> str:
    """One child workflow per step."""
    return f"child:{step}"


def child_cancel_slot(step: str) -> str:
    """One request to roll back the child of `step`."""
    return f"child_cancel:{step}"


def event_slot(dedupe_key: str) -> str:
    """One delivery per event dedupe key (a webhook retried by its sender counts once)."""
    return f"event:{dedupe_key}"


def deferred_slot(phase: str, step: str, attempt: int, since: float | None) -> str:
    """One deferral of a call per opening of its service's circuit (opened at `since`)."""
    return f"deferred:{phase}:{step}:{attempt}:{since}"


def wait_slot(step: str, what: str) -> str:
    """A step's wait for its event: when it "began" (its deadline counts from there) and
    whether it "timed_out"; once each."""
    return f"wait:{step}:{what}"


def compensation_began_slot(round_: int) -> str:
    """One decision to roll back per round."""
    return f"compensation_began:{round_}"


def late_undo_failed_slot(step: str) -> str:
    """One report that a success after the rollback could not be undone, per step."""
    return f"late_undo_failed:{step}"


def sleep_slot(name: str) -> str:
    """One start of a code-first `wf.sleep` per sleep name."""
    return f"sleep:{name}"


def patch_slot(change_id: object) -> str:
    """One answer per `wf.patched(change_id)` in a code-first workflow."""
    return f"patch:{change_id}"


def deadline_slot(round_: int) -> str:
    """One "the workflow's deadline passed" per round."""
    return f"deadline:{round_}"
