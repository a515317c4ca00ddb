"""Throwaway PostgreSQL clusters for failover runs: a primary and a streaming standby with
synchronous replication, made with `initdb` and `pg_basebackup` in a temp directory on
loopback ports, then killed, promoted and stopped by pid.

The main server (:5432) is never touched. As root, the server programs run as the
`postgres` OS user (initdb refuses root). The standby is synchronous: a commit returns
only once the standby has flushed its WAL, so a SIGKILL of the primary loses no commit
that any client saw. Once promoted, the new primary has no standby of its own and commits
locally (a real deployment brings up a new standby; see docs/OPERATIONS.md).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from steadyhand.store.pg_admin import replication_state

STANDBY_NAME = "steadyhand_standby"
DATABASE = "steadyhand"
_CONF = """
listen_addresses = '127.0.0.1'
unix_socket_directories = '{sockets}'
max_connections = 200
shared_buffers = 64MB
wal_level = replica
max_wal_senders = 5
wal_keep_size = 256MB
synchronous_commit = on
log_min_messages = warning
"""


class ClusterError(RuntimeError):
    """A throwaway cluster could not be built or driven; the message says which step."""


def server_bin() -> Path | None:
    """The directory of the newest installed `initdb` / `pg_ctl` (Debian layout, or PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _version_key(path: str) -> int:
    part = Path(path).parent.parent.name
    return int(part) if part.isdigit() else 0


@dataclass
class Node:
    """One server: its data directory, port and (while it runs) its postmaster pid."""

    name: str
    port: int
    datadir: Path
    pid: int | None = None

    @property
    def conninfo(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"


@dataclass
class Cluster:
    """A primary and a synchronous standby (see the module docstring)."""

    base: Path
    bindir: Path
    primary: Node
    standby: Node
    events: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The multi-host URL clients and workers use: libpq finds whichever is primary."""
        hosts = f"127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}"
        return (
            f"postgresql://postgres@{hosts}/{DATABASE}"
            "?target_session_attrs=read-write&connect_timeout=3"
        )

    # -- driving ----------------------------------------------------------------------------
    def kill_primary(self) -> float:
        """SIGKILL the primary's postmaster and every process under it (a lost machine);
        returns the wall-clock time of the kill."""
        node = self.primary
        if node.pid is None:
            raise ClusterError("the primary is not running")
        at = time.time()
        children = _children(node.pid)
        os.kill(node.pid, signal.SIGKILL)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _wait_gone(node.pid, 10.0)
        node.pid = None
        self.events.append(
            f"SIGKILLed the primary on :{node.port} and {len(children)} children "
            f"(gone in {time.time() - at:.2f} s)"
        )
        return at

    def promote_standby(self, timeout: float = 60.0) -> float:
        """Promote the standby (`pg_ctl promote`, waiting until it accepts writes); returns
        the wall-clock time it did."""
        started = time.time()
        self._run([self._bin("pg_ctl"), "promote", "-w", "-t", str(int(timeout)), "-D",
                   str(self.standby.datadir)], timeout + 5)  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(psycopg.Error):
                with psycopg.connect(self.standby.conninfo, connect_timeout=2) as conn:
                    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                if row is not None and not row[0]:
                    break
            if time.monotonic() > deadline:
                raise ClusterError(f"the standby on :{self.standby.port} did not promote")
            time.sleep(0.05)
        self.events.append(
            f"promoted the standby on :{self.standby.port} in {time.time() - started:.2f} s"
        )
        return time.time()

    def wait_replayed(self, timeout: float = 30.0) -> None:
        """Wait until the standby has applied everything the primary wrote so far (a commit
        waits only for the standby's flush, so a read there may briefly not see it)."""
        with psycopg.connect(self.primary.conninfo, autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        target = row[0] if row else "0/0"
        query = "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn"
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.standby.conninfo, autocommit=True) as conn:
            while not (conn.execute(query, (target,)).fetchone() or (False,))[0]:
                if time.monotonic() > deadline:
                    raise ClusterError("the standby did not catch up with the primary")
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop every server this cluster started (immediate shutdown, by pid) and remove
        its directory."""
        for node in (self.primary, self.standby):
            if node.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(node.pid, signal.SIGQUIT)
                _wait_gone(node.pid, 20.0)
                node.pid = None
        shutil.rmtree(self.base, ignore_errors=True)

    # -- building ---------------------------------------------------------------------------
    def _bin(self, name: str) -> str:
        return str(self.bindir / name)

    def _run(self, command: list[str], timeout: float = 120.0) -> str:
        done = subprocess.run(
            [*_as_postgres(), *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            cwd=self.base,  # the postgres user may not enter the caller's directory
        )
        if done.returncode != 0:
            raise ClusterError(
                f"{Path(command[0]).name} failed ({done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-800:]}"
            )
        return done.stdout

    def _start(self, node: Node) -> None:
        """Start a server and wait for it; one more try if it did not come up (a loaded
        machine), then fail with the end of its own log, which says why."""
        log = self.base / f"{node.name}.log"
        _clear_stale_socket_lock(self.base, node.port)
        command = [self._bin("pg_ctl"), "start", "-w", "-t", "60", "-D", str(node.datadir),
                   "-l", str(log), "-o", f"-p {node.port}"]  # fmt: skip
        try:
            self._run(command, 90)
        except ClusterError:
            time.sleep(1.0)
            try:
                self._run(command, 90)
            except ClusterError as again:
                tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
                raise ClusterError(f"{again}; the server's log ends:\n{tail}") from None
        first = (node.datadir / "postmaster.pid").read_text().splitlines()[0]
        node.pid = int(first)

    def build(self, with_standby: bool = True) -> None:
        """initdb the primary, start it, create the database, copy it with pg_basebackup,
        start the standby, and wait until it streams synchronously."""
        self._run([self._bin("initdb"), "-D", str(self.primary.datadir), "-U", "postgres",
                   "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"])  # fmt: skip
        conf = _CONF.format(sockets=self.base)
        with (self.primary.datadir / "postgresql.conf").open("a") as out:
            out.write(conf)
        self._start(self.primary)
        admin = self.primary.conninfo.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        if not with_standby:
            self.events.append(f"primary :{self.primary.port}, no standby")
            return
        self._make_standby()
        self.events.append(
            f"primary :{self.primary.port}, synchronous standby :{self.standby.port}"
        )

    def _make_standby(self) -> None:
        """Copy the primary into the standby's directory, start it streaming, and make it
        the synchronous standby the primary's commits wait for."""
        self._run([self._bin("pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.primary.port),
                   "-U", "postgres", "-D", str(self.standby.datadir), "-X", "stream",
                   "-c", "fast", "--no-sync"])  # fmt: skip
        (self.standby.datadir / "standby.signal").touch()
        with (self.standby.datadir / "postgresql.auto.conf").open("a") as out:
            out.write(
                f"primary_conninfo = 'host=127.0.0.1 port={self.primary.port} user=postgres "
                f"application_name={STANDBY_NAME}'\n"
                "synchronous_standby_names = ''\n"  # once promoted, nobody to wait for
            )
        self._start(self.standby)
        with psycopg.connect(self.primary.conninfo, autocommit=True, connect_timeout=5) as conn:
            # Only now: with it set and no standby yet, every commit would wait forever.
            conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'")
            conn.execute("SELECT pg_reload_conf()")
        self._wait_sync()

    def rebuild_standby(self) -> float:
        """After a failover: the lost node comes back as the new primary's synchronous
        standby (a fresh copy, as a replaced machine would); returns the seconds it took."""
        started = time.monotonic()
        if self.primary.pid is not None:
            raise ClusterError("rebuild_standby is for after a failover: the primary still runs")
        self.primary, self.standby = self.standby, self.primary
        shutil.rmtree(self.standby.datadir)
        self._make_standby()
        took = time.monotonic() - started
        self.events.append(
            f"rebuilt :{self.standby.port} as the synchronous standby of :{self.primary.port} "
            f"in {took:.1f} s"
        )
        return took

    def _wait_sync(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if replication_state(self.primary.conninfo, STANDBY_NAME) == "sync":
                return
            if time.monotonic() > deadline:
                raise ClusterError("the standby did not start streaming synchronously")
            time.sleep(0.1)


def _as_postgres() -> list[str]:
    """Run server programs as `postgres` when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _clear_stale_socket_lock(sockets: Path, port: int) -> None:
    """Remove the socket lock a SIGKILLed postmaster left on `port`. PostgreSQL refuses to
    start while the pid in it exists, and a killed postmaster nobody has reaped yet (its
    parent is whatever adopted it) still exists as a zombie; a replaced machine would
    start with an empty socket directory."""
    lock = sockets / f".s.PGSQL.{port}.lock"
    try:
        pid = int(lock.read_text().splitlines()[0])
    except (OSError, IndexError, ValueError):
        return
    if not _alive(pid):
        for stale in (lock, sockets / f".s.PGSQL.{port}"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def primary_and_standby(
    first_port: int | None = None, *, with_standby: bool = True
) -> Iterator[Cluster]:
    """Build a primary (on `first_port`, default a free port) and a synchronous standby (the
    next port) in a new temp directory; stop both and remove it on exit, whatever happened.
    Without the standby: one private server (benchmarks that read server-wide counters)."""
    bindir = server_bin()
    if bindir is None:
        raise ClusterError("no PostgreSQL server programs (initdb, pg_ctl) are installed")
    if first_port is None:
        first_port = _free_pair()
    for port in (first_port, first_port + 1):
        if _port_busy(port):
            raise ClusterError(f"port {port} is in use; pick another with --port")
    base = Path(tempfile.mkdtemp(prefix="steadyhand-failover-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(base, user.pw_uid, user.pw_gid)
    base.chmod(0o755)
    cluster = Cluster(
        base,
        bindir,
        Node("node1", first_port, base / "node1"),
        Node("node2", first_port + 1, base / "node2"),
    )
    try:
        cluster.build(with_standby)
        yield cluster
    finally:
        cluster.stop()


def _port_busy(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _free_pair() -> int:
    """A port P such that P and P + 1 are both free on loopback (from a random start)."""
    start = 56000 + random.randrange(4000)
    for port in range(start, start + 2000, 2):
        if not _port_busy(port) and not _port_busy(port + 1):
            return port
    raise ClusterError("no two free ports next to each other on 127.0.0.1")
