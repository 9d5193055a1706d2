"""Server-side sessions: the browser holds only a random id in an `HttpOnly`, `SameSite=Lax`
cookie (`Secure` with SECURE_COOKIES); what the session holds (the tokens of a login, the
files a code opened and their proofs, flash messages, the CSRF token) lives in the web's
database, table `sessions`.

- The row's key is an HMAC of the cookie's id (SECRET_KEY): reading the table gives no
  cookie; the content is sealed (AES-GCM, a key derived from SECRET_KEY, the row key as
  associated data).
- Revocable: signing out deletes the row; an operator deletes a row (or every row of a
  `subject`) to end a session at once.
- A session unused for SESSION_IDLE_MINUTES, or older than SESSION_LIFETIME_HOURS, is over.
- Signing in gives a new id (no session fixation).

`ServerSessions` is a plain ASGI middleware: `request.session` is the session's dict, as with
Starlette's cookie sessions, and `session_control(request)` rotates or ends it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection

from guichet_runtime.db import utcnow
from web.tables import sessions

log = logging.getLogger(__name__)

COOKIE = "guichet_session"
#: The last-seen time is written at most this often when nothing else changed.
TOUCH_EVERY = dt.timedelta(seconds=60)


@dataclass(frozen=True)
class SessionPolicy:
    idle: dt.timedelta
    lifetime: dt.timedelta
    secure: bool


class SessionStore:
    """The `sessions` table: rows keyed by an HMAC of the id, content sealed."""

    def __init__(self, engine: AsyncEngine, secret_key: str) -> None:
        self.engine = engine
        self._mac_key = hashlib.sha256(b"guichet-web-session-id:" + secret_key.encode()).digest()
        self._aead = AESGCM(
            hashlib.sha256(b"guichet-web-session-data:" + secret_key.encode()).digest()
        )

    def key(self, session_id: str) -> str:
        return hmac.new(self._mac_key, session_id.encode(), hashlib.sha256).hexdigest()

    def _seal(self, key: str, data: dict[str, Any]) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, json.dumps(data).encode(), key.encode())
        return base64.b64encode(nonce + sealed).decode()

    def _open(self, key: str, text: str) -> dict[str, Any] | None:
        raw = base64.b64decode(text)
        try:
            data = json.loads(self._aead.decrypt(raw[:12], raw[12:], key.encode()))
        except (InvalidTag, ValueError):
            return None  # another SECRET_KEY, or altered: no session
        return data if isinstance(data, dict) else None

    async def load(self, session_id: str, policy: SessionPolicy) -> dict[str, Any] | None:
        """The session's content, or None when unknown, idle too long or past its end
        (deleted then)."""
        key, now = self.key(session_id), utcnow()
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(
                        sessions.c.data, sessions.c.last_seen_at, sessions.c.expires_at
                    ).where(sessions.c.id == key)
                )
            ).first()
        if row is None:
            return None
        if row.expires_at <= now or row.last_seen_at + policy.idle <= now:
            await self.delete(session_id)
            return None
        data = self._open(key, row.data)
        if data is not None:
            data["_seen"] = row.last_seen_at.timestamp()
        return data

    async def create(self, data: dict[str, Any], policy: SessionPolicy) -> str:
        session_id, now = secrets.token_urlsafe(32), utcnow()
        key = self.key(session_id)
        async with self.engine.begin() as conn:
            await conn.execute(
                sessions.insert().values(
                    id=key,
                    data=self._seal(key, data),
                    subject=subject_of(data),
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + policy.lifetime,
                )
            )
            # The sessions over by now go with each new one: no worker needed.
            await conn.execute(
                sessions.delete().where(
                    sa.or_(
                        sessions.c.expires_at <= now,
                        sessions.c.last_seen_at <= now - policy.idle,
                    )
                )
            )
        return session_id

    async def save(self, session_id: str, data: dict[str, Any] | None) -> None:
        """Write the content (None: only that it was used now)."""
        key = self.key(session_id)
        values: dict[str, Any] = {"last_seen_at": utcnow()}
        if data is not None:
            values.update(data=self._seal(key, data), subject=subject_of(data))
        async with self.engine.begin() as conn:
            await conn.execute(sessions.update().where(sessions.c.id == key).values(**values))

    async def delete(self, session_id: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(sessions.delete().where(sessions.c.id == self.key(session_id)))

    async def revoke_subject(self, subject: str) -> int:
        """End every session of one person (an operator's act)."""
        async with self.engine.begin() as conn:
            done = await conn.execute(sessions.delete().where(sessions.c.subject == subject))
        return int(done.rowcount or 0)


def subject_of(data: dict[str, Any]) -> str | None:
    login = data.get("login")
    if not isinstance(login, dict):
        return None
    claims = login.get("claims", {})
    return f"{login.get('kind')}:{claims.get('sub')}"


@dataclass
class SessionControl:
    """What a route may do with its session beyond its content."""

    session_id: str | None
    rotate: bool = False  # a new id at the end of this request (signing in)
    end: bool = False  # delete it and forget the cookie (signing out)
    before: str = field(default="")


def session_control(conn: HTTPConnection) -> SessionControl:
    control: SessionControl = conn.scope["guichet.session"]
    return control


def _fingerprint(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, default=str)


class ServerSessions:
    """Loads the session named by the cookie before the route, writes it back (or creates,
    rotates or ends it) when the response starts."""

    def __init__(self, app: Any, store: SessionStore, policy: SessionPolicy) -> None:
        self.app = app
        self.store = store
        self.policy = policy

    def _cookie(self, value: str, *, expire: bool = False) -> str:
        parts = [f"{COOKIE}={value}", "Path=/", "HttpOnly", "SameSite=Lax"]
        if expire:
            parts += ["Max-Age=0", "Expires=Thu, 01 Jan 1970 00:00:00 GMT"]
        if self.policy.secure:
            parts.append("Secure")
        return "; ".join(parts)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookie = HTTPConnection(scope).cookies.get(COOKIE)
        data = await self.store.load(cookie, self.policy) if cookie else None
        seen = data.pop("_seen", 0.0) if data is not None else 0.0
        control = SessionControl(
            session_id=cookie if data is not None else None,
            before=_fingerprint(data or {}),
        )
        scope["session"] = data if data is not None else {}
        scope["guichet.session"] = control
        stale_cookie = cookie is not None and data is None

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                set_cookie = await self._commit(scope["session"], control, seen, stale_cookie)
                if set_cookie:
                    MutableHeaders(scope=message).append("Set-Cookie", set_cookie)
            await send(message)

        await self.app(scope, receive, send_wrapper)

    async def _commit(
        self, data: dict[str, Any], control: SessionControl, seen: float, stale_cookie: bool
    ) -> str | None:
        current = control.session_id
        if control.end:
            if current:
                await self.store.delete(current)
            return self._cookie("", expire=True) if current or stale_cookie else None
        if control.rotate and current:
            await self.store.delete(current)
            current = None
        if current is None:
            if not data:
                return self._cookie("", expire=True) if stale_cookie else None
            return self._cookie(await self.store.create(data, self.policy))
        if _fingerprint(data) != control.before:
            await self.store.save(current, data)
        elif utcnow().timestamp() - seen > TOUCH_EVERY.total_seconds():
            await self.store.save(current, None)
        return None
