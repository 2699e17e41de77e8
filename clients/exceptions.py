"""Everything the client raises, so callers catch one base class or exactly the case they handle.

    RecursumClientError          any failure of a client call
    ├── TransportError           the server could not be reached or the connection broke
    ├── ApiError                 the server answered with an error status (carries its Problem)
    │   ├── BadRequest           400 / 413 / 415 / 422: the request or the document was refused
    │   ├── Unauthorized         401
    │   ├── Forbidden            403
    │   ├── NotFound             404
    │   ├── Conflict             409: the resource's state refuses it (say, an answered or expired lease)
    │   ├── QueueFull            429, still full after the retries
    │   ├── NotReady             503, still not ready after the retries
    │   └── ServerError          other 5xx
    ├── JobFailed                wait() saw the job end failed or cancelled
    └── WaitTimeout              wait() gave up before the job finished (also a TimeoutError)
"""

from recursum.schemas.jobs import JobRead
from recursum.schemas.problems import Problem


class RecursumClientError(Exception):
    """Raised when any client call fails; the base of everything below."""


class TransportError(RecursumClientError):
    """Raised when httpx could not connect, send or read (the httpx error is the `__cause__`)."""


class ApiError(RecursumClientError):
    """Raised when the server answers with an error status that no subclass names."""

    def __init__(self, problem: Problem, retry_after: float | None = None) -> None:
        detail = f": {problem.detail}" if problem.detail else ""
        super().__init__(f"{problem.status} {problem.title}{detail}")
        self.problem = problem
        self.status = problem.status
        self.retry_after = retry_after


class BadRequest(ApiError):
    """Raised when the server refuses the request or document (400, 413, 415, 422)."""


class Unauthorized(ApiError):
    """Raised when the API key is missing or unknown (401)."""


class Forbidden(ApiError):
    """Raised when the API key lacks the route's scope (403)."""


class NotFound(ApiError):
    """Raised when the job or node does not exist or belongs to another key (404)."""


class Conflict(ApiError):
    """Raised when the request is valid but the resource's state refuses it (409): say, a comparison for
    an evaluation task that was already answered or whose lease expired."""


class QueueFull(ApiError):
    """Raised when the job queue stays full through every retry (429)."""


class NotReady(ApiError):
    """Raised when the service stays unready through every retry (503)."""


class ServerError(ApiError):
    """Raised when the server fails (5xx other than 503)."""


class JobFailed(RecursumClientError):
    """Raised when wait() sees the job end `failed` or `cancelled`; `job` is its final state."""

    def __init__(self, job: JobRead) -> None:
        reason = f": {job.error}" if job.error else ""
        super().__init__(f"job {job.id} {job.status}{reason}")
        self.job = job


class WaitTimeout(RecursumClientError, TimeoutError):
    """Raised when wait() runs out of its `timeout` before the job finishes."""
