"""One error hierarchy for the API and the one function that maps errors to problem bodies.

    ApiError                 an HTTP answer other than success
    ├── Unauthorized (401)   no key, or a key we do not know
    ├── Forbidden (403)      the key lacks the route's scope
    ├── NotFound (404)       no such job or node (or not the caller's)
    ├── MalformedForm (400)  a multipart field of the wrong kind (a file where text belongs)
    ├── Conflict (409)       the request is valid but the resource's state refuses it (an answered lease,
    │                        a report on an unfinished job)
    ├── JobTooLarge (422)    the estimated work is over the per-job budget; says the estimate
    ├── UnsupportedMedia (415)
    ├── QueueFull (429)      answered with Retry-After
    ├── QuotaReached (429)   the key's jobs or tokens are at their limit; Retry-After
    ├── StreamsExhausted (429)  the key's or the server's SSE streams are all open; Retry-After
    └── NotReady (503)
Engine errors a user causes (`InputError`, `ConfigError`) become 400/413/422 here too.
"""

import logging

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from recursum.schemas.problems import Problem
from recursum.service.engine.errors import (
    ConfigError,
    DocumentTooLarge,
    EmptyDocument,
    NotStreamSafe,
    NotText,
    RecursumError,
)

log = logging.getLogger("recursum.api")


class ApiError(Exception):
    status = 500
    title = "Internal error"

    def __init__(self, detail: str = "", headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class Unauthorized(ApiError):
    status, title = 401, "Missing or unknown API key"


class Forbidden(ApiError):
    status, title = 403, "API key lacks the required scope"


class NotFound(ApiError):
    status, title = 404, "Not found"


class Conflict(ApiError):
    status, title = 409, "Conflict"


class MalformedForm(ApiError):
    status, title = 400, "Malformed request body"


class UnsupportedMedia(ApiError):
    status, title = 415, "Unsupported media type"


class QueueFull(ApiError):
    status, title = 429, "Job queue is full"


class QuotaReached(ApiError):
    status, title = 429, "API key quota reached"


class JobTooLarge(ApiError):
    status, title = 422, "Job over budget"


class StreamsExhausted(ApiError):
    status, title = 429, "Too many event streams"


class NotReady(ApiError):
    status, title = 503, "Service not ready"


_ENGINE_STATUS: list[tuple[type[RecursumError], int, str]] = [
    (DocumentTooLarge, 413, "Document too large"),
    (NotText, 400, "Document is not UTF-8 text"),
    (EmptyDocument, 422, "Document is empty"),
    (NotStreamSafe, 422, "Document is not stream-safe text"),
    (ConfigError, 422, "Invalid options"),
]


def _classify(error: Exception) -> tuple[int, str, str, dict[str, str]]:
    match error:
        case ApiError():
            return error.status, error.title, error.detail, error.headers
        case RecursumError():
            for kind, status, title in _ENGINE_STATUS:
                if isinstance(error, kind):
                    return status, title, str(error), {}
            return 422, "Unprocessable request", str(error), {}
        case msgspec.ValidationError() | msgspec.DecodeError():
            return 400, "Malformed request body", str(error), {}
        case ValidationException():
            return 400, "Malformed request", str(error.detail), {}
        case HTTPException():
            return error.status_code, str(error.detail), "", dict(error.headers or {})
        case _:
            log.exception("unhandled error", exc_info=error)
            return 500, "Internal error", "", {}


def problem_response(request: Request, error: Exception) -> Response[Problem]:
    status, title, detail, headers = _classify(error)
    slug = title.lower().replace(" ", "-")
    return Response(
        Problem(type=f"https://recursum.dev/problems/{slug}", title=title, status=status,
                detail=detail, instance=request.url.path),
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )
