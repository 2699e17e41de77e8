"""NUL characters are refused on every input path (PostgreSQL cannot store them in text, so one would be a
500 deep in the store): in the path, in the query string, and in request bodies as they are read, raw or as
a JSON `\\u0000` escape. Bodies are checked chunk by chunk as the handler reads them, so a route that
refuses before reading its body (a full queue) still reads nothing."""

import re

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from recursum.service.api.problems import ApiError

# `\u0000` not preceded by an escaping backslash: an even run of backslashes is literal text
_JSON_NUL = re.compile(rb"(?:^|[^\\])(?:\\\\)*\\u0000")
_TAIL = 16  # bytes of the previous chunk kept, so an escape split across chunks is still seen


class NulCharacter(ApiError):
    status, title = 400, "NUL character in request"


class RefuseNul(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if "\x00" in scope["path"] or b"%00" in scope["query_string"] or b"\x00" in scope["query_string"]:
            raise NulCharacter("the URL contains a NUL character")
        tail = b""

        async def checked_receive() -> Message:
            nonlocal tail
            message = await receive()
            if message["type"] == "http.request":
                chunk = tail + message.get("body", b"")
                # A substring test first: the regex costs ~40 ms a megabyte, on the event loop.
                if b"\x00" in chunk or (b"u0000" in chunk and _JSON_NUL.search(chunk)):
                    raise NulCharacter("the request body contains a NUL character (raw or as \\u0000); "
                                       "send text without it")
                tail = chunk[-_TAIL:]
            return message

        await next_app(scope, checked_receive, send)
