"""Hearing workflows end: one listener per store object, shared by every waiting client.

`Client.wait` and `AsyncClient.wait` register a `Waiter` for a workflow id; the store's
`Endings` runs one thread, started by the first wait that finds its workflow still running,
that listens where the store can say a workflow ended (PostgreSQL: LISTEN on migration
007's channel; SQLite: a socket in the store's wake-up channel) and wakes the waiters of
each id it hears. However many clients, threads or tasks wait, a store holds one listening
connection; it is closed once nobody has waited for `IDLE_AFTER` seconds, and always by
`close()`.

What it hears is a hint: a waiter still reads the workflow's status, and re-reads every
`recheck` seconds, so a lost notification or a lost connection costs that interval at most.
When the listener (re)connects or loses its connection it wakes every waiter, since ends
may have passed unheard meanwhile; a waiter reads the status after registering, so no end
falls between its look and its sleep.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

log = logging.getLogger("steadyhand.store")
IDLE_AFTER = 5.0  # seconds without any waiter before the listener lets its connection go
TICK = 1.0  # seconds between the listener's looks at its idleness
BACKOFF_FIRST, BACKOFF_MAX = 0.05, 2.0  # between attempts to (re)connect


class Waiter:
    """One wait's registration: `wake` is called (from the listener's thread) when the
    workflow ends, and when the listener starts or stops hearing."""

    __slots__ = ("wake", "workflow_id")

    def __init__(self, workflow_id: str, wake: Callable[[], None]) -> None:
        self.workflow_id = workflow_id
        self.wake = wake


class Source(Protocol):
    """One connection a listener hears ends on."""

    def fileno(self) -> int:
        """Readable when news arrives."""
        ...

    def receive(self) -> Iterable[str | None]:
        """The ids of the workflows that ended (None: any may have); raises when lost."""
        ...

    def close(self) -> None: ...


class Endings(ABC):
    """The listener of one store (see the module docstring). Subclasses say how to listen."""

    recheck = 5.0  # seconds between a waiter's safety-net looks while the store is heard

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._waiters: dict[str, set[Waiter]] = {}
        self._serving = False  # a thread is listening, or about to, for the waiters
        self._runners: list[threading.Thread] = []
        self._stop: tuple[socket.socket, socket.socket] | None = None
        self._closed = False
        self._last_waiter = time.monotonic()
        self._hearer: threading.Thread | None = None
        self._pid = os.getpid()  # a forked child inherits no thread: it starts its own

    # -- what a subclass provides, all called on the listener's thread -------------------

    @abstractmethod
    def _connect(self) -> Source:
        """Start listening (on the listener's thread); raises when it cannot."""

    # -- what waiters use ----------------------------------------------------------------

    @contextlib.contextmanager
    def watch(self, workflow_id: str, wake: Callable[[], None]) -> Iterator[Waiter]:
        """Register `wake` for the end of `workflow_id` while the block runs. Register,
        then look at the workflow, then `listen()` before sleeping: a workflow found ended
        at the first look costs no listener."""
        waiter = Waiter(workflow_id, wake)
        if self._pid != os.getpid():
            self._forked()
        with self._lock:
            self._waiters.setdefault(workflow_id, set()).add(waiter)
        try:
            yield waiter
        finally:
            with self._lock:
                waiting = self._waiters.get(workflow_id)
                if waiting is not None:
                    waiting.discard(waiter)
                    if not waiting:
                        del self._waiters[workflow_id]
                self._last_waiter = time.monotonic()

    def listen(self) -> None:
        """Start the listener unless it runs (a thread that died is replaced)."""
        with self._lock:
            alive = self._serving and any(t.is_alive() for t in self._runners)
            if not alive and not self._closed:
                self._start_locked()

    @property
    def hearing(self) -> bool:
        """Whether ends are heard as they happen right now (else waits poll)."""
        return self._hearer is not None

    def waiting(self) -> int:
        """How many waits are registered (for tests and metrics)."""
        with self._lock:
            return sum(len(waiting) for waiting in self._waiters.values())

    def threads(self) -> list[threading.Thread]:
        """The listener threads still alive (for tests: none after `close`)."""
        with self._lock:
            return [thread for thread in self._runners if thread.is_alive()]

    def close(self, timeout: float = 5.0) -> None:
        """Stop listening for good; waits still registered fall back to polling."""
        with self._lock:
            self._closed = True
            runners, stop = list(self._runners), self._stop
            if stop is not None:
                with contextlib.suppress(OSError):
                    stop[1].send(b"!")  # never drained: every later select sees it
        for thread in runners:
            if thread is not threading.current_thread():
                thread.join(timeout)
        with self._lock:
            self._runners = [thread for thread in self._runners if thread.is_alive()]
            if stop is not None and not self._runners:
                for sock in stop:
                    sock.close()
                self._stop = None
        self._wake_all()

    # -- the listener's thread ---------------------------------------------------------

    def _forked(self) -> None:
        """In a child process: the parent's listener did not come along (nor, perhaps, the
        lock's holder); start afresh, leaving the parent's connection alone."""
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._waiters, self._runners, self._stop = {}, [], None
        self._serving, self._hearer = False, None

    def _start_locked(self) -> None:
        if self._stop is None:
            self._stop = socket.socketpair()
        self._runners = [thread for thread in self._runners if thread.is_alive()]
        thread = threading.Thread(target=self._run, name=f"{self.name} endings", daemon=True)
        self._serving = True
        self._runners.append(thread)
        thread.start()

    def _run(self) -> None:
        assert self._stop is not None
        stop = self._stop[0]
        backoff = BACKOFF_FIRST
        try:
            while not self._leaving():
                try:
                    source = self._connect()
                except Exception as exc:
                    log.debug("%s: cannot listen for endings (%s); waits poll", self.name, exc)
                    if select.select([stop], [], [], backoff)[0]:
                        return  # closed
                    backoff = min(backoff * 2, BACKOFF_MAX)
                    continue
                backoff = BACKOFF_FIRST
                self._set_hearing(True)
                try:
                    if self._listen(source, stop):
                        return
                except Exception as exc:
                    log.info("%s: lost the endings listener (%s); reconnecting", self.name, exc)
                finally:
                    self._set_hearing(False)
                    with contextlib.suppress(Exception):
                        source.close()
        finally:
            self._let_go()

    def _listen(self, source: Source, stop: socket.socket) -> bool:
        """Dispatch what `source` hears until it is lost (raises) or this thread is to
        stop serving (True)."""
        while True:
            fd = source.fileno()  # may change: a lost PostgreSQL connection raises here
            readable = select.select([fd, stop.fileno()], [], [], TICK)[0]
            if stop.fileno() in readable or self._leaving():
                return True
            if fd in readable:
                self._dispatch(source.receive())

    def _let_go(self) -> None:
        """The last thread to stop serving closes the stop sockets (a store dropped
        without `close()` leaves nothing open)."""
        me = threading.current_thread()
        with self._lock:
            others = [t for t in self._runners if t is not me and t.is_alive()]
            if not self._serving and not others and self._stop is not None:
                for sock in self._stop:
                    sock.close()
                self._stop = None

    def _leaving(self) -> bool:
        """Closed, or idle long enough: the thread then stops serving (a new wait starts
        another)."""
        with self._lock:
            if self._closed:
                self._serving = False
                return True
            idle = time.monotonic() - self._last_waiter > IDLE_AFTER
            if idle and not self._waiters:
                self._serving = False
                return True
            return False

    def _dispatch(self, ended: Iterable[str | None]) -> None:
        woken: list[Waiter] = []
        with self._lock:
            for workflow_id in ended:
                if workflow_id is None:
                    woken = [w for waiting in self._waiters.values() for w in waiting]
                    break
                woken.extend(self._waiters.get(workflow_id, ()))
        for waiter in woken:
            _wake(waiter)

    def _set_hearing(self, hearing: bool) -> None:
        me = threading.current_thread()
        with self._lock:
            if hearing:
                self._hearer = me
            elif self._hearer is me:
                self._hearer = None
        self._wake_all()

    def _wake_all(self) -> None:
        with self._lock:
            woken = [w for waiting in self._waiters.values() for w in waiting]
        for waiter in woken:
            _wake(waiter)


def _wake(waiter: Waiter) -> None:
    try:
        waiter.wake()
    except Exception:  # e.g. the waiter's event loop closed: it waits no more
        log.debug("a waiter could not be woken", exc_info=True)
