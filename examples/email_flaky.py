"""Send an email through a flaky provider: at most N attempts, never two in flight at once,
stop at the first success, and end with the reason when the provider keeps failing.

A one-step saga whose step says `on_give_up="fail"`: when every attempt fails, the workflow
ends `failed` (a person decides what to do), and status.reason says why it gave up.
Run: python examples/email_flaky.py [--emails 5] [--failure-rate 0.5] [--db sqlite:///x.db]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steadyhand import (
    App,
    Client,
    Context,
    RetryPolicy,
    Status,
    Step,
    TransientError,
    Worker,
    WorkerOptions,
    open_store,
)

MAX_ATTEMPTS = 4
"""The provider is tried at most this often per email; the fourth failure ends the workflow."""


class ProviderUnavailable(Exception):
    """What the provider's client raises on a 503: worth trying again later."""


@dataclass
class FlakyProvider:
    """A stand-in for an email API that fails often but deduplicates by message id.

    `fail_first` fails each message's first attempts; `failure_rate` fails any attempt with
    that probability (seeded). It counts calls and the most calls in flight for one message,
    so the example can show the engine never overlaps two attempts of one send.
    """

    failure_rate: float = 0.0
    fail_first: int = 0
    latency: float = 0.02
    seed: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    delivered: dict[str, str] = field(default_factory=dict)
    max_in_flight: int = 0
    _in_flight: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _rng: random.Random = field(default_factory=random.Random)

    def configure(self, *, failure_rate: float = 0.0, fail_first: int = 0, seed: int = 0) -> None:
        """Forget every call and delivery and start over with new odds."""
        with self._lock:
            self.failure_rate, self.fail_first = failure_rate, fail_first
            self._rng = random.Random(seed)
            self.calls.clear()
            self.delivered.clear()
            self._in_flight.clear()
            self.max_in_flight = 0

    async def send(self, message_id: str, to: str, subject: str) -> str:
        """Deliver once per message id and return the provider's id for it."""
        with self._lock:
            self.calls[message_id] += 1
            self._in_flight[message_id] += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight[message_id])
            attempt = self.calls[message_id]
            fails = attempt <= self.fail_first or self._rng.random() < self.failure_rate
        try:
            await asyncio.sleep(self.latency)  # long enough that overlapping calls would show
            if fails:
                raise ProviderUnavailable(f"503 from the provider (call {attempt} for {to})")
            with self._lock:
                return self.delivered.setdefault(message_id, f"msg-{len(self.delivered) + 1}")
        finally:
            with self._lock:
                self._in_flight[message_id] -= 1


provider = FlakyProvider()
app = App()


@app.agent()
async def send_email(ctx: Context) -> dict[str, Any]:
    """Send one email; the idempotency key is the message id, so a retry never sends twice."""
    email = ctx.input
    try:
        provider_id = await provider.send(ctx.idempotency_key, email["to"], email["subject"])
    except ProviderUnavailable as exc:
        raise TransientError(str(exc), retry_after=0.05) from exc
    return {"provider_id": provider_id, "to": email["to"], "attempt": ctx.attempt}


app.workflow(
    "send_email",
    [
        Step(
            "send",
            send_email,
            retry=RetryPolicy(max_attempts=MAX_ATTEMPTS, initial_backoff=0.05, max_backoff=0.5),
            timeout=5.0,
            on_give_up="fail",
        )
    ],
)


def send(client: Client, to: str, subject: str, key: str, timeout: float = 30.0) -> Status:
    """Start (or find, by `key`) the email's workflow and wait until it ends."""
    started = client.start("send_email", {"to": to, "subject": subject}, key=key)
    return client.wait(started.workflow_id, timeout=timeout)


def main(argv: list[str] | None = None) -> int:
    """Send a few emails with a worker on a background thread, and print how each ended."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--emails", type=int, default=5)
    parser.add_argument("--failure-rate", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--db", default=None, help="store URL (default: a temporary SQLite file)")
    args = parser.parse_args(argv)
    provider.configure(failure_rate=args.failure_rate, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(args.db or f"sqlite:///{Path(tmp) / 'email.db'}")
        client = Client(app, store)
        worker = Worker(app, store, WorkerOptions(concurrency=4, poll_interval=0.02))
        thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False})
        thread.start()
        try:
            for n in range(1, args.emails + 1):
                status = send(client, f"user{n}@example.com", "Welcome!", key=f"welcome-{n}")
                attempts = client.view(status.id).count("attempt_scheduled")
                outcome = status.result if status.state == "completed" else status.reason
                print(f"email {n}: {status.state} after {attempts} attempt(s): {outcome}")
        finally:
            worker.stop()
            thread.join()
            store.close()
    print(
        f"provider: {sum(provider.calls.values())} calls, {len(provider.delivered)} delivered, "
        f"at most {provider.max_in_flight} call(s) in flight for one email"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
