"""A request-body size limit for every service: a plain ASGI middleware that answers 413
with a French message when `Content-Length` exceeds the limit, and also when a body sent
without it (chunked) grows past the limit while it streams in."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from guichet_runtime.refusals import RefusalKind

#: JSON APIs take small bodies; a route taking files gets its own, larger limit.
DEFAULT_MAX_BODY_BYTES = 64 * 1024
#: What a multipart form adds around a file (boundaries, part headers, small fields).
MULTIPART_OVERHEAD_BYTES = 16 * 1024


class BodyTooLarge(Exception):
    """Raised from `receive` when the streamed body passes the limit."""


def too_large_message(limit: int) -> str:
    size = f"{limit // 1024} Ko" if limit >= 1024 else f"{limit} octets"
    return f"La requête est trop volumineuse : {size} au plus."


class BodySizeLimit:
    """Refuse request bodies larger than `max_bytes` (413). `overrides` gives other limits
    to the paths matching a regular expression (first match wins), e.g. an upload route."""

    def __init__(self, app: Any, max_bytes: int, overrides: Sequence[tuple[str, int]] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.overrides = [(re.compile(pattern), limit) for pattern, limit in overrides]

    def limit_for(self, path: str) -> int:
        return next((lim for rx, lim in self.overrides if rx.fullmatch(path)), self.max_bytes)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, limit)
            return
        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Any:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge(too_large_message(limit))
            return message

        async def guarded_send(message: Any) -> None:
            nonlocal started
            if exceeded:  # whatever the app made of the broken body, the answer is 413
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _refuse(send, limit)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            if not started:
                await _refuse(send, limit)
        except Exception:
            if not exceeded:
                raise
            if not started:
                await _refuse(send, limit)


def _content_length(scope: Any) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Any, limit: int) -> None:
    body = json.dumps(
        {"message": too_large_message(limit), "kind": RefusalKind.TOO_LARGE.value},
        ensure_ascii=False,
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
