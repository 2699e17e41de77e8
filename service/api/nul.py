"""NUL characters are refused on every input path (PostgreSQL cannot store them in text, so one would be a
500 deep in the store): in the path, in the query string, and in request bodies as they are read, raw or as
a JSON `\\u0000` escape. Bodies are checked chunk by chunk as the handler reads them, so a route that
refuses before reading its body (a full queue) still reads nothing."""

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from recursum.service.api.problems import ApiError

_ESCAPE = b"u0000"


class NulCharacter(ApiError):
    status, title = 400, "NUL character in request"


class NulScanner:
    """Finds a NUL in a body read in chunks: a raw byte, or `\\u0000` whose backslash is not itself escaped
    (an odd run of backslashes before `u0000`), however the chunks cut the run or the escape."""

    def __init__(self) -> None:
        self._carry = b""  # the last bytes seen, so an escape cut by a chunk boundary is still whole
        self._run_before_carry = 0  # backslashes just before the carry (a run may span many chunks)

    def feed(self, chunk: bytes) -> bool:
        """Whether the body so far holds a NUL."""
        if b"\x00" in chunk:
            return True
        buffer = self._carry + chunk
        found = False
        # A substring search first: scanning backslash runs costs Python time, on the event loop.
        start = buffer.find(_ESCAPE, max(0, len(self._carry) - len(_ESCAPE) + 1))
        while start != -1 and not found:
            found = self._backslashes_before(buffer, start) % 2 == 1
            start = buffer.find(_ESCAPE, start + 1)
        keep = min(len(buffer), len(_ESCAPE))
        self._run_before_carry = self._backslashes_before(buffer, len(buffer) - keep)
        self._carry = buffer[len(buffer) - keep:]
        return found

    def _backslashes_before(self, buffer: bytes, end: int) -> int:
        """The run of backslashes ending at `end`, counting the run before the carry when it reaches it."""
        window = 64  # grows only while the run fills it, so the scan stays linear in the body
        while True:
            piece = buffer[max(0, end - window):end]
            run = len(piece) - len(piece.rstrip(b"\\"))
            if run < len(piece) or len(piece) == end:
                break
            window *= 2
        return run + (self._run_before_carry if run == end else 0)


class RefuseNul(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if "\x00" in scope["path"] or b"%00" in scope["query_string"] or b"\x00" in scope["query_string"]:
            raise NulCharacter("the URL contains a NUL character")
        scanner = NulScanner()

        async def checked_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request" and scanner.feed(message.get("body", b"")):
                raise NulCharacter("the request body contains a NUL character (raw or as \\u0000); "
                                   "send text without it")
            return message

        await next_app(scope, checked_receive, send)
