"""Sealed archives: move ended workflows out of the store into files that prove they are whole.

An archive is a directory: `part-NNNN.jsonl.gz` files, one JSON line per workflow (its row
and every fact), `services.jsonl.gz` (the service facts of the services those workflows
called, recorded over their time range; copied, since they are shared history), and
`manifest.json` with the counts, the time range, the SHA-256 of every file and a hash chain
over the workflows: `h0 = sha256("steadyhand-archive/1")`, `hN = sha256(hN-1 + sha256(line N))`
in hex. Changing, removing or reordering any workflow changes the chain; changing any byte
changes a file's hash; `verify` checks both.

Order of work, so nothing is ever only in memory: every file is written, fsynced and
renamed into place, then the manifest, then the run is recorded in the store, and only
then are the workflows removed, in short batches. A crash before removal leaves the
workflows in the store (a later run archives them again); a crash during removal leaves
the rest in the store, all of them already in this archive.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steadyhand.core import jsoncodec
from steadyhand.core.errors import InputError
from steadyhand.core.facts import Fact
from steadyhand.core.plans import Plan
from steadyhand.core.view import WorkflowView
from steadyhand.store import archiving
from steadyhand.store.base import Store

FORMAT = "steadyhand-archive/1"
MANIFEST = "manifest.json"
SERVICES = "services.jsonl.gz"
GENESIS = hashlib.sha256(FORMAT.encode()).hexdigest()


@dataclass
class ArchiveReport:
    """What an archive run did (or, with `dry_run`, would do)."""

    name: str
    directory: Path
    workflows: int = 0
    facts: int = 0
    removed_facts: int = 0
    files: list[str] = field(default_factory=list)
    first_ended: float | None = None
    last_ended: float | None = None
    seconds: float = 0.0
    dry_run: bool = False


def line_of(record: dict[str, Any]) -> bytes:
    """The bytes of one archived workflow as stored (what the chain hashes); key order is
    kept, since it is how the data was recorded."""
    return jsoncodec.dumps_stable(record).encode()


def chain_step(previous: str, line: bytes) -> str:
    return hashlib.sha256((previous + hashlib.sha256(line).hexdigest()).encode()).hexdigest()


def archive(
    store: Store,
    *,
    ended_before: float,
    to: Path,
    name: str | None = None,
    dry_run: bool = False,
    by: str = "",
    batch: int = 200,
    per_file: int = 10_000,
    limit: int = 1_000_000,
    progress: Callable[[str], None] | None = None,
) -> ArchiveReport:
    """Archive the workflows that ended before `ended_before` (at most `limit`; run again
    for the rest) into `to/<name>` and remove them from the store (see the module
    docstring for the order of work)."""
    started = time.monotonic()
    name = name or time.strftime("archive-%Y%m%dT%H%M%SZ", time.gmtime())
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise InputError(f"--name {name!r}: use letters, digits, '-', '_' and '.' only")
    directory = to / name
    report = ArchiveReport(name, directory, dry_run=dry_run)
    chosen = archiving.candidates(store, ended_before, limit)
    report.workflows = len(chosen)
    if chosen:
        ended = [c.ended_at for c in chosen]
        report.first_ended, report.last_ended = min(ended), max(ended)
    if dry_run or not chosen:
        report.seconds = time.monotonic() - started
        return report
    if directory.exists() and any(directory.iterdir()):
        raise InputError(f"{directory} already holds files; choose another --name or --to")
    directory.mkdir(parents=True, exist_ok=True)
    ids = [c.workflow_id for c in chosen]
    chain, files, services, since = GENESIS, [], set(), float("inf")
    for index, start in enumerate(range(0, len(ids), per_file), 1):
        part = ids[start : start + per_file]
        entry, chain, facts, used, first = _write_part(store, directory, index, part, chain, batch)
        files.append(entry)
        services |= used
        since = min(since, first)
        report.facts += facts
        if progress:
            progress(f"wrote {entry['name']}: {len(part):,} workflows, {facts:,} facts")
    assert report.last_ended is not None
    history = archiving.service_history(store, sorted(services), since, report.last_ended)
    files.append(_write_lines(directory / SERVICES, [line_of(r) for r in history])[0])
    manifest = {
        "format": FORMAT,
        "name": name,
        "created_at": time.time(),
        "ended_before": ended_before,
        "counts": {"workflows": len(ids), "facts": report.facts, "service_facts": len(history)},
        "time_range": {"first_created": since, "last_ended": report.last_ended},
        "chain": {"algorithm": "sha256", "genesis": GENESIS, "head": chain},
        "files": files,
    }
    manifest_bytes = jsoncodec.pretty(manifest, sort_keys=True).encode()
    _durable_write(directory / MANIFEST, manifest_bytes)
    run_id = f"ar_{secrets.token_hex(8)}"
    archiving.record_run(
        store,
        {
            "id": run_id,
            "name": name,
            "directory": str(directory.resolve()),
            "ended_before": ended_before,
            "workflows": len(ids),
            "facts": report.facts,
            "manifest_hash": hashlib.sha256(manifest_bytes).hexdigest(),
            "by": by,
            "at": time.time(),
        },
    )
    for start in range(0, len(ids), batch):
        report.removed_facts += archiving.remove(store, run_id, ids[start : start + batch])
        store.checkpoint()  # else the next small commit folds the whole log in, stalling
    report.files = [f["name"] for f in files]
    report.seconds = time.monotonic() - started
    return report


def _write_part(
    store: Store, directory: Path, index: int, ids: list[str], chain: str, batch: int
) -> tuple[dict[str, Any], str, int, set[str], float]:
    lines, facts, services, first = [], 0, set(), float("inf")
    for start in range(0, len(ids), batch):
        for record in archiving.read_whole(store, ids[start : start + batch]):
            line = line_of(record)
            chain = chain_step(chain, line)
            lines.append(line)
            facts += len(record["facts"])
            first = min(first, float(record["workflow"]["created_at"]))
            services |= {f["service"] for f in record["facts"] if f.get("service")}
    entry, _ = _write_lines(directory / f"part-{index:04d}.jsonl.gz", lines)
    entry.update(
        workflows=len(lines), facts=facts, first_id=ids[0], last_id=ids[-1], chain_end=chain
    )
    return entry, chain, facts, services, first


def _write_lines(path: Path, lines: list[bytes]) -> tuple[dict[str, Any], bytes]:
    """Write gzip'd JSON Lines durably; gzip's timestamp is zeroed so equal input gives
    equal bytes."""
    body = gzip.compress(b"".join(line + b"\n" for line in lines), mtime=0)
    _durable_write(path, body)
    return {"name": path.name, "sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}, body


def _durable_write(path: Path, body: bytes) -> None:
    """Write to a temporary name, fsync, rename into place, fsync the directory."""
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as out:
        out.write(body)
        out.flush()
        os.fsync(out.fileno())
    temporary.rename(path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- reading archives back ----------------------------------------------------------------------
def load_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    try:
        manifest: dict[str, Any] = jsoncodec.loads(path.read_bytes())
    except FileNotFoundError:
        raise InputError(f"{directory} is not an archive: it has no {MANIFEST}") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} cannot be read as a manifest: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise InputError(f"{path}: format {manifest.get('format')!r} is not {FORMAT}")
    return manifest


def verify(directory: Path) -> list[str]:
    """Every problem found with the archive in `directory` (empty when it is whole)."""
    try:
        manifest = load_manifest(directory)
    except InputError as exc:
        return [str(exc)]
    problems: list[str] = []
    chain, workflows, facts = manifest["chain"]["genesis"], 0, 0
    for entry in manifest.get("files", []):
        path = directory / entry["name"]
        try:
            body = path.read_bytes()
        except OSError as exc:
            problems.append(f"{entry['name']}: missing or unreadable ({exc.strerror})")
            continue
        if hashlib.sha256(body).hexdigest() != entry["sha256"]:
            problems.append(f"{entry['name']}: SHA-256 differs from the manifest (changed)")
            continue
        if "chain_end" not in entry:
            continue  # the service history is not part of the chain
        for line in gzip.decompress(body).splitlines():
            chain = chain_step(chain, line)
            workflows += 1
            facts += len(jsoncodec.loads(line)["facts"])
        if chain != entry["chain_end"]:
            problems.append(f"{entry['name']}: hash chain breaks here")
    if chain != manifest["chain"]["head"]:
        problems.append(f"{MANIFEST}: the chain head does not match the workflows")
    counts = manifest.get("counts", {})
    if (counts.get("workflows"), counts.get("facts")) != (workflows, facts):
        problems.append(f"{MANIFEST}: counts say {counts}, files hold {workflows} / {facts}")
    return problems


def find(directory: Path, workflow_id: str) -> dict[str, Any]:
    """The archived record of one workflow (its row and facts)."""
    manifest = load_manifest(directory)
    for entry in manifest["files"]:
        if "first_id" not in entry or not entry["first_id"] <= workflow_id <= entry["last_id"]:
            continue
        with gzip.open(directory / entry["name"], "rb") as lines:
            for line in lines:
                record: dict[str, Any] = jsoncodec.loads(line)
                if record["workflow"]["id"] == workflow_id:
                    return record
    raise InputError(f"no workflow {workflow_id!r} in the archive at {directory}")


def view_of(record: dict[str, Any]) -> WorkflowView:
    """An archived workflow as the view `explain` tells the story of."""
    row = record["workflow"]
    facts = tuple(
        Fact(
            seq=int(f["seq"]),
            kind=f["kind"],
            at=float(f["at"]),
            step=f.get("step"),
            attempt=f.get("attempt"),
            slot=f.get("slot"),
            data=f.get("data"),
        )
        for f in record["facts"]
    )
    return WorkflowView(
        workflow_id=row["id"],
        name=row["name"],
        input=row["input"],
        plan=Plan.from_json(row["plan"]),
        created_at=float(row["created_at"]),
        facts=facts,
        parent_id=row.get("parent_id"),
    )
