"""How the app is served: uvicorn, with bounds on connections and on how long a client may take to send a
request.

uvicorn has no such deadlines (encode/uvicorn#157, "--timeout-request-start" and
"--timeout-request-complete", open since 2018): its keep-alive timer is reset by every byte received, so a
client that trickles a request one byte at a time (slowloris), in its headers or in its body, holds a
connection forever, and with `limit_concurrency` a few hundred of them turn every other caller away.
"""

import asyncio

import h11
import uvicorn
from litestar import Litestar
from uvicorn.protocols.http.h11_impl import H11Protocol

from recursum.service.settings import ServiceSettings


class RequestDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request's headers take longer than
    `header_seconds`, or whose body takes longer than `body_seconds` once the headers are in. A response
    being streamed (an SSE stream) is never cut: the client has sent its whole request by then."""

    header_seconds = 10.0
    body_seconds = 60.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_for: object | None = None  # the client state being timed (an h11 sentinel)
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def _watch(self) -> None:
        """Time the part of the request the client is sending now; nothing once it has sent it all."""
        state = self.conn.their_state
        if state is self._waiting_for:
            return
        self._cancel()
        if state is h11.IDLE or state is h11.SEND_BODY:
            seconds = self.header_seconds if state is h11.IDLE else self.body_seconds
            self._waiting_for = state
            self._deadline = self.loop.call_later(seconds, self._overdue, state)

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._waiting_for = None, None

    def _overdue(self, state: object) -> None:
        if self.conn.their_state is state and not self.transport.is_closing():
            self.transport.close()


def serve(app: Litestar, settings: ServiceSettings, host: str, port: int) -> None:
    """Run `app` until interrupted."""
    protocol = type("ConfiguredRequestDeadline", (RequestDeadlineProtocol,),
                    {"header_seconds": settings.header_seconds, "body_seconds": settings.body_seconds})
    uvicorn.run(app, host=host, port=port, log_level="info", http=protocol,
                limit_concurrency=settings.limit_concurrency, timeout_keep_alive=5)
