"""Store errors are named for what they are, with what to do (issues 21 and 22): a full
disk (SQLite on a small tmpfs; PostgreSQL with its tables in a tablespace on one), a
read-only file system, a database locked too long, and PostgreSQL connections that fail
for a missing database, an unknown role, a server that is down, or no free slot.

Mounting needs root: without it these tests skip and say so.
"""

from __future__ import annotations

import os
import secrets
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from click.testing import CliRunner

from steadyhand import App, Client, Context, Step, open_store
from steadyhand.cli.main import main as cli
from steadyhand.core.errors import StoreError, StoreUnavailable
from steadyhand.store import Store
from tests.conftest import fresh_store_url, pg_base, running_worker

app = App()


@app.agent()
def noop(ctx: Context) -> str:
    return "ok"


app.workflow("one", [Step("only", noop)])


@contextmanager
def small_tmpfs(size: str = "3m", owner: str | None = None) -> Iterator[Path]:
    """A tmpfs of `size` mounted on a new directory (owned by `owner`), unmounted after."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; run as root to test a full disk")
    folder = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="sh-endings-"))
    options = f"size={size},mode=0755"
    if owner is not None:
        import pwd

        user = pwd.getpwnam(owner)
        options = f"size={size},mode=0700,uid={user.pw_uid},gid={user.pw_gid}"
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        folder.rmdir()
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); full disk not tested")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)
        if subprocess.run(["mountpoint", "-q", str(folder)], check=False).returncode == 0:
            subprocess.run(["umount", "-l", str(folder)], check=False)
        folder.rmdir()


def _fill(folder: Path, leave: int) -> Path:
    """A file that takes all the free space of `folder`'s file system but `leave` bytes."""
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    filler = folder / "filler"
    with filler.open("wb") as out:
        out.write(b"\0" * max(0, free - leave))
    return filler


def _start_until_refused(client: Client, limit: int = 2000) -> tuple[int, StoreError]:
    for n in range(limit):
        try:
            client.start("one", {"pad": secrets.token_hex(4000)})
        except StoreError as exc:
            return n, exc
    raise AssertionError(f"{limit} starts and the disk is still not full")


def test_sqlite_on_a_full_disk_says_disk_full_and_recovers() -> None:
    with small_tmpfs() as folder:
        store = open_store(f"sqlite:///{folder / 'steadyhand.db'}")
        try:
            client = Client(app, store)
            before = [client.start("one", {}).workflow_id for _ in range(5)]
            filler = _fill(folder, leave=64 * 1024)
            _, error = _start_until_refused(client)
            assert isinstance(error, StoreUnavailable), "retryable: space may be freed"
            assert error.cause == "disk_full"
            assert "disk full" in str(error) and str(folder) in str(error)
            assert "Free space" in str(error)
            assert "cannot rollback" not in str(error)
            filler.unlink()
            after = client.start("one", {}).workflow_id
            with running_worker(app, store):
                for wid in [*before, after]:
                    assert client.wait(wid, timeout=20).state == "completed"
            for wid in before:
                assert client.view(wid).count("attempt_succeeded") == 1, "each step once"
        finally:
            store.close()


def test_sqlite_on_a_read_only_file_system_says_so() -> None:
    with small_tmpfs() as folder:
        url = f"sqlite:///{folder / 'steadyhand.db'}"
        open_store(url).close()
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        with pytest.raises(StoreError) as caught:
            Client(app, open_store(url)).start("one", {})
        assert caught.value.cause == "read_only"
        assert "read-only file system" in str(caught.value)
        assert "Remount it read-write" in str(caught.value)


def test_sqlite_locked_for_too_long_says_so(tmp_path: Path) -> None:
    path = tmp_path / "steadyhand.db"
    open_store(f"sqlite:///{path}").close()
    store = open_store(f"sqlite:///{path}", busy_timeout=0.2)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable) as caught:
            Client(app, store).start("one", {})
        assert caught.value.cause == "locked"
        assert "stayed locked by another writer for longer than 0.2s" in str(caught.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        store.close()


# -- PostgreSQL ----------------------------------------------------------------------------------


def _pg() -> str:
    base = pg_base()
    if base is None:
        pytest.skip("PostgreSQL not reachable: set STEADYHAND_TEST_PG")
    return base


def _with(url: str, *, user: str | None = None, port: int | None = None, db: str = "") -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user or parts.username or 'postgres'}@{host}:{port or parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{db}" if db else parts.path))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_pg_missing_database_is_reported_at_once() -> None:
    url = _with(_pg(), db=f"sh_endings_missing_{secrets.token_hex(3)}")
    began = time.monotonic()
    with pytest.raises(StoreError) as caught:
        open_store(url, connect_timeout=30)
    # At once: the pool's 30 s of retries are not waited for (a generous bound).
    assert time.monotonic() - began < 15
    assert caught.value.cause == "database_missing"
    assert not isinstance(caught.value, StoreUnavailable), "retrying cannot help"
    assert "does not exist" in str(caught.value) and "createdb" in str(caught.value)


def test_pg_unknown_role_is_an_authentication_failure() -> None:
    url = _with(_pg(), user=f"nobody_{secrets.token_hex(3)}")
    with pytest.raises(StoreError) as caught:
        open_store(url)
    assert caught.value.cause == "authentication_failed"
    assert "refused the login" in str(caught.value)


def test_pg_server_down_says_so() -> None:
    url = _with(_pg(), port=_free_port())
    with pytest.raises(StoreUnavailable) as caught:
        open_store(url, connect_timeout=3)
    assert caught.value.cause == "connection_refused"
    assert "Is the server running" in str(caught.value)


def test_pg_no_free_connection_slot_names_the_cause() -> None:
    base = _pg()
    role = f"sh_endings_few_{secrets.token_hex(3)}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 1")
        try:
            url = _with(base, user=role)
            slot = psycopg.connect(url)  # takes the role's only slot
            try:
                with pytest.raises(StoreUnavailable) as caught:
                    open_store(url, connect_timeout=3)
            finally:
                slot.close()
            assert caught.value.cause == "too_many_clients"
            assert "no connection slot left" in str(caught.value)
            assert "too many connections" in str(caught.value)
        finally:
            admin.execute(f"DROP ROLE {role}")


def test_cli_names_a_missing_pg_database() -> None:
    url = _with(_pg(), db=f"sh_endings_missing_{secrets.token_hex(3)}")
    result = CliRunner().invoke(cli, ["status", "x", "--db", url])
    assert result.exit_code == 1
    assert "does not exist" in result.output and "Traceback" not in result.output


def test_pg_full_tablespace_says_disk_full_and_recovers(tmp_path: Path) -> None:
    base = _pg()
    with psycopg.connect(base, autocommit=True) as admin:
        superuser, data = admin.execute(
            "SELECT rolsuper, current_setting('data_directory') FROM pg_roles "
            "WHERE rolname = current_user"
        ).fetchone()  # type: ignore[misc]
    if not superuser or not Path(data).exists():
        pytest.skip("needs a local PostgreSQL server and a superuser to create a tablespace")
    space = f"sh_endings_full_{secrets.token_hex(3)}"
    with small_tmpfs("3m", owner="postgres") as folder:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f"CREATE TABLESPACE {space} LOCATION '{folder}'")
        try:
            with fresh_store_url("postgres", tmp_path, "full") as url:
                _full_tablespace(url, base, space)
        finally:
            with psycopg.connect(base, autocommit=True) as admin:
                admin.execute(f"DROP TABLESPACE IF EXISTS {space}")


def _full_tablespace(url: str, base: str, space: str) -> None:
    store: Store = open_store(url)
    schema = url.rsplit("schema=", 1)[1]
    try:
        with psycopg.connect(base, autocommit=True) as admin:
            for table in ("workflows", "facts"):
                admin.execute(f"ALTER TABLE {schema}.{table} SET TABLESPACE {space}")
            indexes = admin.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s "
                "AND tablename IN ('workflows', 'facts')",
                (schema,),
            ).fetchall()
            for (index,) in indexes:
                admin.execute(f"ALTER INDEX {schema}.{index} SET TABLESPACE {space}")
        client = Client(app, store)
        before = client.start("one", {}).workflow_id
        started, error = _start_until_refused(client)
        assert started > 0
        assert isinstance(error, StoreUnavailable) and error.cause == "disk_full"
        assert "disk full" in str(error) and "No space left on device" in str(error)
        with psycopg.connect(base, autocommit=True) as admin:  # free the space
            for table in ("workflows", "facts"):
                admin.execute(f"ALTER TABLE {schema}.{table} SET TABLESPACE pg_default")
            for (index,) in indexes:
                admin.execute(f"ALTER INDEX {schema}.{index} SET TABLESPACE pg_default")
        with running_worker(app, store):
            assert client.wait(before, timeout=20).state == "completed"
            after = client.start("one", {}).workflow_id
            assert client.wait(after, timeout=20).state == "completed"
    finally:
        store.close()
        with psycopg.connect(base, autocommit=True) as admin:  # before the tablespace goes
            admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
