"""Waking processes that share one SQLite store, without a poll.

PostgreSQL has LISTEN/NOTIFY; SQLite has nothing of the kind, so a worker in another
process than the client that started a workflow used to find it only at its next poll
(50 ms). Every process that waits on a store binds a Unix datagram socket in a directory
named after the database file; a commit that has work for others sends one byte to each
socket there. A datagram carries no data that matters: it only says "look again", so a
lost one costs at most a poll interval (the poll stays as the safety net), and a full
receive buffer means the waiter is already awake.

The directory lives under the temporary directory, keyed by the database's real path and
the user id (socket paths are limited to about 100 bytes, and a database path can be
longer); it is private to the user (mode 0700). Sockets left by a process that died are
removed by the next sender that finds nobody listening on them.

Clients waiting for workflows to end listen on sockets of their own there (`ENDED`, see
`store.sqlite_endings`): the commit that records an end sends them the workflow ids.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import select
import socket
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path

SUFFIX = ".sock"
ENDED = ".end"  # the sockets of processes waiting for workflows to end
CHUNK = 4000  # bytes of workflow ids per datagram
RETRIES = (0.0002, 0.0005, 0.001)  # pauses when a waiter's queue is full (it is draining)


def channel_dir(db_path: Path) -> Path:
    """The directory of wake-up sockets for the database at `db_path`."""
    real = os.path.realpath(db_path)
    digest = hashlib.sha256(real.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"steadyhand-{os.getuid()}-{digest}"


class WakeChannel:
    """One process's end of a store's wake-up channel (see the module docstring)."""

    def __init__(self, db_path: Path) -> None:
        self.dir = channel_dir(db_path)
        self._lock = threading.Lock()
        self._receiver: socket.socket | None = None
        self._address: str | None = None
        self._open: list[tuple[socket.socket, str | None]] = []  # for the finalizer
        self._sender: socket.socket | None = None
        self._fallback = threading.Event()  # used only if no socket could be bound
        # A store dropped without `close()` must not leave its sockets to the collector
        # (a ResourceWarning) nor its socket file in the directory.
        self._finalizer = weakref.finalize(self, _close_all, self._open)

    def _listening(self) -> socket.socket | None:
        """This process's receiving socket, bound on first use (None if that failed)."""
        with self._lock:
            if self._receiver is None and self._address is None:
                try:
                    self.dir.mkdir(mode=0o700, exist_ok=True)
                    address = str(self.dir / f"{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}")
                    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    receiver.bind(address)
                    receiver.setblocking(False)
                except OSError:
                    self._address = ""  # do not try again; wait falls back to the event
                    return None
                self._receiver, self._address = receiver, address
                self._open.append((receiver, address))
            return self._receiver

    def wait(self, timeout: float) -> None:
        """Block until a wake-up arrives or `timeout` seconds pass; take every one waiting."""
        receiver = self._listening()
        if receiver is None:
            self._fallback.wait(timeout)
            self._fallback.clear()
            return
        readable, _, _ = select.select([receiver], [], [], timeout)
        while readable:
            try:
                receiver.recv(64)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break

    def wake_self(self) -> None:
        """Wake this process's own waiter (after a commit made here)."""
        self._fallback.set()
        if self._address:
            self._send(self._address)

    def broadcast(self) -> None:
        """Wake every process waiting on this store, this one included."""
        self._fallback.set()
        try:
            entries = list(os.scandir(self.dir))
        except OSError:
            return
        for entry in entries:
            if entry.name.endswith(SUFFIX):
                self._send(entry.path, stale_ok=True)

    def announce_ended(self, workflow_ids: Sequence[str]) -> None:
        """Tell every process waiting for ends that these workflows ended (after the commit
        that recorded it). A waiter whose queue stays full misses it and finds the end at
        its next look."""
        try:
            entries = [e.path for e in os.scandir(self.dir) if e.name.endswith(ENDED)]
        except OSError:
            return
        if not entries:
            return
        payloads, chunk = [], b""
        for workflow_id in workflow_ids:
            encoded = workflow_id.encode()
            if chunk and len(chunk) + len(encoded) >= CHUNK:
                payloads.append(chunk)
                chunk = b""
            chunk = chunk + b"\n" + encoded if chunk else encoded
        payloads.append(chunk)
        for address in entries:
            for payload in payloads:
                self._send(address, payload, stale_ok=True, retries=RETRIES)

    def _send(
        self,
        address: str,
        payload: bytes = b"!",
        *,
        stale_ok: bool = False,
        retries: Sequence[float] = (),
    ) -> None:
        with self._lock:
            if self._sender is None:
                self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sender.setblocking(False)
                self._open.append((self._sender, None))
            sender = self._sender
        try:
            for pause in (*retries, None):
                try:
                    sender.sendto(payload, address)
                    return
                except (BlockingIOError, InterruptedError):
                    if pause is None:
                        return  # its buffer stays full: it has wake-ups waiting already
                    time.sleep(pause)
        except (ConnectionRefusedError, FileNotFoundError):
            if stale_ok:  # nobody listens there any more: its process ended
                with contextlib.suppress(OSError):
                    os.unlink(address)
        except OSError:
            pass  # a wake-up is a hint; the poll covers a lost one

    def close(self) -> None:
        """Stop listening and remove this process's socket (a later wait binds a new one)."""
        with self._lock:
            receiver, address, sender = self._receiver, self._address, self._sender
            self._receiver, self._address, self._sender = None, None, None
        for sock in (receiver, sender):
            if sock is not None:
                sock.close()
        with self._lock:
            self._open[:] = [(s, a) for s, a in self._open if s not in (receiver, sender)]
        if address:
            with contextlib.suppress(OSError):
                os.unlink(address)


def _close_all(opened: list[tuple[socket.socket, str | None]]) -> None:
    for sock, address in opened:
        sock.close()
        if address:
            with contextlib.suppress(OSError):
                os.unlink(address)
    opened.clear()
