"""Who may use the dashboard: a token (bearer header or a login that sets a signed session
cookie), and a CSRF token bound to the session that every form POST must carry back.

The signing key is derived from the access token, so sessions survive restarts and work
across replicas, and changing the token logs everybody out. Without a token (`--no-auth`,
local only) the key is random and sessions exist only to carry the CSRF token.

A session carries its issue time under the signature and expires `session_seconds` later
(default 12 h). Logging out revokes the session: its nonce is remembered (in this process,
until the session would have expired anyway), so a copied cookie stops working too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request

SESSION_COOKIE = "steadyhand_session"
SESSION_SECONDS = 12 * 3600


@dataclass(frozen=True)
class Session:
    """A verified session cookie: its nonce (the CSRF secret's seed) and whether it logged in."""

    nonce: str
    authenticated: bool
    issued: int


class Guard:
    """Checks tokens, signs and verifies sessions, and issues and checks CSRF tokens."""

    def __init__(
        self,
        token: str | None,
        session_seconds: float = SESSION_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token = token
        self.session_seconds = session_seconds
        self._clock = clock
        self._revoked: dict[str, float] = {}  # nonce -> when its session would expire
        self._revoked_lock = threading.Lock()
        if token:
            self._key = hmac.new(token.encode(), b"steadyhand-dashboard-v1", "sha256").digest()
        else:
            self._key = secrets.token_bytes(32)

    @property
    def required(self) -> bool:
        return self.token is not None

    def token_matches(self, candidate: str | None) -> bool:
        if not self.token or not candidate:
            return False
        return hmac.compare_digest(
            candidate.encode("utf-8", "surrogatepass"), self.token.encode("utf-8", "surrogatepass")
        )

    def bearer(self, request: Request) -> bool:
        """Whether the request carries `Authorization: Bearer <token>` (scripts, Prometheus)."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.token_matches(value.strip())

    def new_session(self, authenticated: bool) -> str:
        """A fresh signed cookie value."""
        nonce = secrets.token_urlsafe(18)
        flag = "1" if authenticated else "0"
        body = f"{nonce}.{flag}.{int(self._clock())}"
        return f"{body}.{self._sign(body)}"

    def session(self, request: Request) -> Session | None:
        """The request's session if its cookie is present and genuine."""
        return self.verify(request.cookies.get(SESSION_COOKIE, ""))

    def verify(self, raw: str) -> Session | None:
        """The session a cookie value stands for, or None when it is not one we signed, it
        has expired, or it was logged out."""
        if not raw.isascii() or len(raw) > 200:
            return None
        body, _, signature = raw.rpartition(".")
        nonce, flag, issued = [*body.split("."), "", "", ""][:3]
        if not nonce or flag not in ("0", "1") or not issued.isdigit() or len(issued) > 12:
            return None
        if not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
            return None
        now = self._clock()
        if not int(issued) <= now + 60 < int(issued) + self.session_seconds + 60:
            return None
        with self._revoked_lock:
            if nonce in self._revoked:
                return None
        return Session(nonce, flag == "1", int(issued))

    def revoke(self, session: Session) -> None:
        """Log `session` out for good (see the module docstring)."""
        now = self._clock()
        with self._revoked_lock:
            for nonce, until in list(self._revoked.items()):
                if until < now:
                    del self._revoked[nonce]
            self._revoked[session.nonce] = session.issued + self.session_seconds

    def allowed(self, request: Request) -> bool:
        """May this request see the dashboard?"""
        if not self.required or self.bearer(request):
            return True
        session = self.session(request)
        return session is not None and session.authenticated

    def csrf_token(self, session: Session) -> str:
        return self._sign(f"csrf.{session.nonce}")

    def csrf_ok(self, request: Request, submitted: str | None) -> bool:
        """A form POST is genuine when it returns the CSRF token of its own session."""
        if self.bearer(request):
            return True  # browsers never add this header on their own: no cross-site risk
        session = self.session(request)
        if session is None or not submitted or not submitted.isascii():
            return False
        return hmac.compare_digest(submitted.encode(), self.csrf_token(session).encode())

    def _sign(self, message: str) -> str:
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()
