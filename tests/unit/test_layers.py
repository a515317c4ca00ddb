"""The architecture, checked: layers import only downward, no import cycles, SQL only in
`store/`, a pure `core/`, small modules, and a public API that changes only on purpose.

Everything here reads the source with `ast` (nothing is imported), so a violation is named
by file and line. See docs/ARCHITECTURE.md for the layers and why they sit where they do.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import Path

import steadyhand

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "steadyhand"

# Each layer's rank: a module may import only from layers of a lower rank (or its own).
# `define` sits on `engine` because `App.connect()` and `Client` drive the engine; the engine
# itself never sees `define` (it takes plans, which are core values). The package root
# (`steadyhand/__init__.py`, the public API) gathers the lower layers for users; `demo` is
# written against that public API like any user's app.
RANKS = {
    "core": 0,
    "store": 1,
    "engine": 2,
    "define": 3,
    "runtime": 4,
    "(root)": 5,
    "ops": 5,
    "testing": 5,
    "web": 6,
    "demo": 6,
    "chaos": 7,
    "cli": 8,
    "__main__": 9,
}

# Modules allowed over the size limit for now, with the reason. Keep this empty.
MAX_LINES = 400
OVERSIZE: dict[str, str] = {}

# What `core` may not call: it is pure (facts and `now` in, decision out).
IMPURE_CALLS = {
    ("time", "time"),
    ("time", "monotonic"),
    ("time", "sleep"),
    ("time", "perf_counter"),
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("os", "getenv"),
    ("random", "random"),
    ("random", "randint"),
    ("random", "choice"),
    ("random", "uniform"),
}
# Methods that touch files, whatever object they are called on (paths are fine; reading
# them is not). A seeded `random.Random(seed)` is pure; the module's shared one is not.
IMPURE_METHODS = {"read_text", "read_bytes", "write_text", "write_bytes", "unlink", "mkdir"}
IMPURE_NAMES = {"open", "input", "print"}
IMPURE_MODULES = {
    "socket",
    "ssl",
    "http",
    "urllib",
    "httpx",
    "psycopg",
    "sqlite3",
    "subprocess",
    "threading",
    "asyncio",
    "secrets",
    "uuid",
    "shutil",
    "tempfile",
    "logging",
}

# SQL keywords that start a statement; in a string outside `store/` they mean SQL leaked.
SQL_TEXT = re.compile(
    r"^\s*(SELECT\s.+\sFROM\s|INSERT\s+INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s|"
    r"CREATE\s+(TABLE|INDEX|SCHEMA)\s|DROP\s+(TABLE|SCHEMA)\s|SET\s+LOCAL\s)",
    re.DOTALL,
)
# Modules outside `store/` that may hold SQL text, and why.
SQL_ELSEWHERE = {
    # The demo's stand-in remote services (hotel, flights, cars) keep their bookings in their
    # own SQLite file, as a real third party would: that is not steadyhand's store.
    "demo/ledger.py": "the fake remote services' own ledger",
}


@functools.cache
def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text())


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "(root)"


def rel(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def top_level_imports(path: Path, known: set[str]) -> Iterator[tuple[int, str]]:
    """The steadyhand modules `path` imports when it is loaded (not inside functions, not
    under `if TYPE_CHECKING`)."""
    for node in parsed(path).body:
        yield from _imports_of(node, known)


def all_imports(path: Path, known: set[str]) -> Iterator[tuple[int, str]]:
    """Every steadyhand module `path` imports anywhere (functions and TYPE_CHECKING too)."""
    for node in ast.walk(parsed(path)):
        yield from _imports_of(node, known)


def _imports_of(node: ast.AST, known: set[str]) -> Iterator[tuple[int, str]]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] == "steadyhand":
                yield node.lineno, _nearest(alias.name, known)
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        if node.module.split(".")[0] != "steadyhand":
            return
        for alias in node.names:
            full = f"{node.module}.{alias.name}"
            yield node.lineno, full if full in known else _nearest(node.module, known)


def _nearest(name: str, known: set[str]) -> str:
    while name not in known and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


KNOWN = {name for name, _ in modules()}


# Imports that go up, each with its reason. Keep this short; each is a debt.
UPWARD = {
    # `Client.list` / `AsyncClient.list` read a page the way `steadyhand list` does; the
    # listing lives with the operator reports (lazy imports: nothing loads at import time).
    ("steadyhand.define.client", "steadyhand.ops.reports"),
    ("steadyhand.define.client", "steadyhand.ops.search"),
    ("steadyhand.define.async_client", "steadyhand.ops.reports"),
}


def test_every_layer_imports_only_layers_below_it() -> None:
    wrong = []
    for name, path in modules():
        mine = layer_of(name)
        assert mine in RANKS, f"{rel(path)}: new layer {mine!r}: give it a rank in RANKS"
        for line, target in all_imports(path, KNOWN):
            theirs = layer_of(target)
            if (name, target) in UPWARD:
                continue
            if theirs != mine and RANKS[theirs] >= RANKS[mine]:
                wrong.append(f"{rel(path)}:{line} ({mine}) imports {target} ({theirs})")
    assert not wrong, "imports that go up or sideways:\n" + "\n".join(wrong)


def test_core_and_store_import_only_what_the_rules_allow() -> None:
    # The rules, spelled out (the ranks above imply them; this names them).
    for name, path in modules():
        targets = {layer_of(t) for _, t in all_imports(path, KNOWN)} - {layer_of(name)}
        if layer_of(name) == "core":
            assert not targets, f"{rel(path)} (core) imports {sorted(targets)}"
        if layer_of(name) == "store":
            assert targets <= {"core"}, f"{rel(path)} (store) imports {sorted(targets)}"


def test_web_never_imports_the_cli() -> None:
    """The CLI sits above `web` (its `dashboard` and `ingress` commands serve the web apps),
    so only that direction exists; the web apps never reach into the CLI's helpers."""
    for name, path in modules():
        if layer_of(name) == "web":
            targets = {layer_of(t) for _, t in all_imports(path, KNOWN)}
            assert "cli" not in targets, f"{rel(path)} imports the CLI"


def test_no_import_cycles() -> None:
    graph = {
        name: {t for _, t in top_level_imports(path, KNOWN) if t != name}
        for name, path in modules()
    }
    cycles = _cycles(graph)
    assert not cycles, "module-level import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_core_performs_no_io_and_reads_no_clock() -> None:
    wrong = []
    for name, path in modules():
        if layer_of(name) != "core":
            continue
        for node in ast.walk(parsed(path)):
            where = f"{rel(path)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Import | ast.ImportFrom):
                roots = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                for root in roots:
                    if root.split(".")[0] in IMPURE_MODULES:
                        wrong.append(f"{where} imports {root}")
            elif isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name) and func.id in IMPURE_NAMES:
                    wrong.append(f"{where} calls {func.id}()")
                if isinstance(func, ast.Attribute) and func.attr in IMPURE_METHODS:
                    wrong.append(f"{where} calls .{func.attr}()")
                if (
                    isinstance(func, ast.Attribute)
                    and isinstance(func.value, ast.Name)
                    and (func.value.id, func.attr) in IMPURE_CALLS
                ):
                    wrong.append(f"{where} calls {ast.unparse(func)}()")
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and (node.value.id, node.attr) in {("os", "environ"), *IMPURE_CALLS}
            ):
                wrong.append(f"{where} reads {node.value.id}.{node.attr}")
    assert not wrong, "core must stay pure (no I/O, no clock):\n" + "\n".join(sorted(set(wrong)))


def test_sql_lives_only_in_store() -> None:
    wrong = []
    for name, path in modules():
        if layer_of(name) == "store" or rel(path) in SQL_ELSEWHERE:
            continue
        for node in ast.walk(parsed(path)):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and SQL_TEXT.search(node.value)
            ):
                first = node.value.strip().splitlines()[0]
                wrong.append(f"{rel(path)}:{node.lineno}: {first[:60]}")
    assert not wrong, "SQL outside store/ (add a named statement there):\n" + "\n".join(wrong)


def test_the_sql_detector_sees_sql() -> None:
    assert SQL_TEXT.search("\n    SELECT id FROM workflows WHERE x")
    assert SQL_TEXT.search("DELETE FROM tasks")
    assert not SQL_TEXT.search("Select one of the options from the list")


def test_no_module_is_over_the_size_limit() -> None:
    over = {}
    for _, path in modules():
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES and rel(path) not in OVERSIZE:
            over[rel(path)] = lines
    assert not over, f"modules over {MAX_LINES} lines (split them by responsibility): {over}"


def test_the_size_exceptions_are_still_needed() -> None:
    for name in OVERSIZE:
        path = PACKAGE / name
        if path.exists():
            assert len(path.read_text().splitlines()) > MAX_LINES, f"drop {name} from OVERSIZE"


# The curated public API: a name leaves or joins only on purpose (and in the changelog).
PUBLIC_API = [
    "App",
    "AsyncClient",
    "CallAgent",
    "CancelChild",
    "ChildState",
    "CircuitPolicy",
    "Client",
    "Complete",
    "Context",
    "Decision",
    "DefinitionError",
    "EndCompensated",
    "Fact",
    "Fail",
    "IdempotencyConflict",
    "InputError",
    "NotFoundError",
    "OutcomeUnknown",
    "PermanentError",
    "ProbeAnswer",
    "Progress",
    "RecordFact",
    "RetryPolicy",
    "ServicePolicy",
    "Signalled",
    "StartChild",
    "Started",
    "Status",
    "SteadyhandError",
    "Step",
    "StepFailed",
    "StoreError",
    "StoreUnavailable",
    "TooManyEvents",
    "TransientError",
    "UnknownWorkflowError",
    "WaitTimedOut",
    "WaitUntil",
    "Worker",
    "WorkerOptions",
    "Workflow",
    "WorkflowStillRunning",
    "WorkflowView",
    "call_progress",
    "open_store",
]


def test_public_api_is_pinned() -> None:
    assert sorted(steadyhand.__all__) == sorted(PUBLIC_API)
    missing = [name for name in steadyhand.__all__ if not hasattr(steadyhand, name)]
    assert not missing, f"__all__ names what the package does not define: {missing}"


def test_one_json_module() -> None:
    """Every JSON policy lives in `core/jsoncodec.py`; nothing else imports json or orjson."""
    wrong = []
    for _, path in modules():
        if rel(path) == "core/jsoncodec.py":
            continue
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                roots = [(node.module or "").split(".")[0]]
            else:
                continue
            if {"json", "orjson"} & set(roots):
                wrong.append(f"{rel(path)}:{node.lineno}")
    assert not wrong, "use steadyhand.core.jsoncodec instead of json/orjson:\n" + "\n".join(wrong)
