"""An agency's system on a real socket, for the adapter SDK's unit tests: an HTTP server on
127.0.0.1 (aiohttp's test server) that hands every request to a handler written with httpx's
types (an `httpx.Request` in, an `httpx.Response` out, sync or async) and sends its answer
back. The adapter's transport calls it as it calls an agency, over TCP."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from aiohttp import web
from aiohttp.test_utils import RawTestServer

Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]

#: Set by aiohttp from the body it sends, not copied from the handler's answer.
_FRAMING = {"content-length", "transfer-encoding", "content-encoding", "connection"}


class AgencyServer:
    def __init__(self, handler: Handler) -> None:
        #: Who answers; a test may swap it mid-way.
        self.handler = handler
        self._server = RawTestServer(self._answer, host="127.0.0.1")

    @property
    def url(self) -> str:
        return str(self._server.make_url("")).rstrip("/")

    async def _answer(self, request: web.BaseRequest) -> web.Response:
        received = httpx.Request(
            request.method,
            str(request.url),
            headers=list(request.headers.items()),
            content=await request.read(),
        )
        reply: Any = self.handler(received)
        if inspect.isawaitable(reply):
            reply = await reply
        headers = [(k, v) for k, v in reply.headers.items() if k.lower() not in _FRAMING]
        return web.Response(status=reply.status_code, body=reply.content, headers=headers)

    async def start(self) -> AgencyServer:
        await self._server.start_server()
        return self

    async def close(self) -> None:
        await self._server.close()


async def serve_agency(handler: Handler) -> AgencyServer:
    """A started server answering with `handler`; `close()` it at the end."""
    return await AgencyServer(handler).start()
