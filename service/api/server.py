"""How the app is served: uvicorn, with bounds on connections and on how long a client may take to send a
request's headers.

uvicorn has no such deadline (encode/uvicorn#157, "--timeout-request-start", open since 2018): its
keep-alive timer is reset by every byte received, so a client that trickles one header byte at a time
(slowloris) holds a connection forever, and with `limit_concurrency` a few hundred of them turn every
other caller away with 503.
"""

import asyncio

import h11
import uvicorn
from litestar import Litestar
from uvicorn.protocols.http.h11_impl import H11Protocol

from recursum.service.settings import ServiceSettings


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose next request's headers are not all in within
    `header_seconds` of the connection opening or of the previous response ending."""

    header_seconds = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._arm_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
        self._header_deadline = self.loop.call_later(self.header_seconds, self._headers_overdue)

    def _headers_overdue(self) -> None:
        # IDLE: h11 has not parsed a whole request line and headers since the deadline was armed.
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def serve(app: Litestar, settings: ServiceSettings, host: str, port: int) -> None:
    """Run `app` until interrupted."""
    protocol = type("ConfiguredHeaderDeadline", (HeaderDeadlineProtocol,),
                    {"header_seconds": settings.header_seconds})
    uvicorn.run(app, host=host, port=port, log_level="info", http=protocol,
                limit_concurrency=settings.limit_concurrency, timeout_keep_alive=5)
