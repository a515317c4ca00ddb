"""Who may use the dashboard: a token (bearer header or a login that sets a signed session
cookie), and a CSRF token bound to the session that every form POST must carry back.

The signing key is derived from the access token, so sessions survive restarts and work
across replicas, and changing the token logs everybody out. Without a token (`--no-auth`,
local only) the key is random and sessions exist only to carry the CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from starlette.requests import Request

SESSION_COOKIE = "steadyhand_session"
SESSION_SECONDS = 12 * 3600


@dataclass(frozen=True)
class Session:
    """A verified session cookie: its nonce (the CSRF secret's seed) and whether it logged in."""

    nonce: str
    authenticated: bool


class Guard:
    """Checks tokens, signs and verifies sessions, and issues and checks CSRF tokens."""

    def __init__(self, token: str | None) -> None:
        self.token = token
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
        return hmac.compare_digest(candidate.encode(), self.token.encode())

    def bearer(self, request: Request) -> bool:
        """Whether the request carries `Authorization: Bearer <token>` (scripts, Prometheus)."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.token_matches(value.strip())

    def new_session(self, authenticated: bool) -> str:
        """A fresh signed cookie value."""
        nonce = secrets.token_urlsafe(18)
        flag = "1" if authenticated else "0"
        return f"{nonce}.{flag}.{self._sign(f'{nonce}.{flag}')}"

    def session(self, request: Request) -> Session | None:
        """The request's session if its cookie is present and genuine."""
        return self.verify(request.cookies.get(SESSION_COOKIE, ""))

    def verify(self, raw: str) -> Session | None:
        """The session a cookie value stands for, or None when it is not one we signed."""
        nonce, _, rest = raw.partition(".")
        flag, _, signature = rest.partition(".")
        if not nonce or flag not in ("0", "1"):
            return None
        if not hmac.compare_digest(signature, self._sign(f"{nonce}.{flag}")):
            return None
        return Session(nonce, flag == "1")

    def allowed(self, request: Request) -> bool:
        """May this request see the dashboard?"""
        if not self.required or self.bearer(request):
            return True
        session = self.session(request)
        return session is not None and session.authenticated

    def same_origin(self, request: Request) -> bool:
        """A browser's Origin (when sent) must name this very host: a second CSRF fence."""
        origin = request.headers.get("origin")
        if not origin or origin == "null":
            return origin is None
        host = request.headers.get("host", "")
        return origin.split("://", 1)[-1] == host

    def csrf_token(self, session: Session) -> str:
        return self._sign(f"csrf.{session.nonce}")

    def csrf_ok(self, request: Request, submitted: str | None) -> bool:
        """A form POST is genuine when it returns the CSRF token of its own session."""
        if self.bearer(request):
            return True  # browsers never add this header on their own: no cross-site risk
        session = self.session(request)
        if session is None or not submitted:
            return False
        return hmac.compare_digest(submitted, self.csrf_token(session))

    def _sign(self, message: str) -> str:
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()
