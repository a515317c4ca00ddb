"""A real HTTP booking service on 127.0.0.1 that takes longer than a worker's lease and does
NOT deduplicate requests in flight: it counts every request per key and how many ran at
once, so a test can prove that no second request was sent while the first was in progress.

POST /book?key=K&token=T  -> sleeps `slow` seconds, then books K (200, JSON)
GET /status?key=K         -> {"state": "none" | "in_progress" | "booked"}
POST /cancel?key=K        -> cancels K
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class SlowService:
    def __init__(self, slow: float) -> None:
        self.slow = slow
        self.lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.in_progress: Counter[str] = Counter()
        self.most_at_once: Counter[str] = Counter()
        self.booked: dict[str, int] = {}  # key -> fencing token of the request that booked it
        self.cancelled: set[str] = set()
        self.started = threading.Event()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:
                key = parse_qs(urlsplit(self.path).query)["key"][0]
                self._answer({"state": service.state(key)})

            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                key = query["key"][0]
                if parts.path == "/cancel":
                    with service.lock:
                        service.cancelled.add(key)
                    self._answer({"cancelled": key})
                    return
                with service.lock:
                    service.requests[key] += 1
                    service.in_progress[key] += 1
                    service.most_at_once[key] = max(
                        service.most_at_once[key], service.in_progress[key]
                    )
                service.started.set()
                time.sleep(service.slow)
                with service.lock:
                    service.in_progress[key] -= 1
                    service.booked.setdefault(key, int(query.get("token", ["0"])[0]))
                self._answer({"booking": key})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def state(self, key: str) -> str:
        with self.lock:
            if self.in_progress[key]:
                return "in_progress"
            return "booked" if key in self.booked else "none"

    def __enter__(self) -> SlowService:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
