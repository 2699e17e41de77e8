"""An httpx MockTransport that records requests, for the client's tests."""

from collections.abc import Callable

import httpx

Answer = Callable[[httpx.Request, int], httpx.Response]


def recording_transport(answer: Answer) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport answering with `answer(request, calls_so_far)`, and the list of requests it received."""
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        requests.append(request)
        return answer(request, len(requests))

    return httpx.MockTransport(handler), requests
