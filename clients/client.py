"""Typed client of the recursum REST service, blocking (`Client`) and asyncio (`AsyncClient`).

`_BaseClient` builds every request and decodes every answer into the wire structs of
`clients.schemas`; the two clients add only the I/O, with the same methods in the same order.
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

import httpx
import msgspec

from recursum.clients.exceptions import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    JobFailed,
    NotFound,
    NotReady,
    QueueFull,
    RecursumClientError,
    ServerError,
    TransportError,
    Unauthorized,
    WaitTimeout,
)
from recursum.schemas.adapters import AdapterActivate, AdaptersRead
from recursum.schemas.evaluations import (
    ComparisonCreate,
    ComparisonExport,
    ComparisonRead,
    ComparisonRecord,
    EvaluationKind,
    EvaluationStats,
    EvaluationTask,
    EvaluatorStats,
    FlaggedItem,
    Preference,
)
from recursum.schemas.events import JobEvent, JobFinished
from recursum.schemas.jobs import EstimateRead, JobAccepted, JobRead, NodeRead, SummaryCreate, TreeRead
from recursum.schemas.options import SummaryOptions
from recursum.schemas.problems import Problem
from recursum.schemas.reports import ReportCreate, ReportKind, ReportRead

T = TypeVar("T")
EventHandler = Callable[[JobEvent], None]

_STATUS_ERRORS: dict[int, type[ApiError]] = {
    400: BadRequest, 413: BadRequest, 415: BadRequest, 422: BadRequest,
    401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 429: QueueFull, 503: NotReady,
}
_RETRIED_STATUSES = frozenset({429, 503})  # the server asks us to come back (Retry-After)
# wait() reconnects whenever a stream that delivered events ends before `finished` (the server ends streams
# past their lifetime, or when the reader fell behind); one that delivers nothing may be retried once.
_STREAM_CONNECTIONS = 2
_RECONNECT_PAUSE = 0.5  # seconds before reconnecting, so a stream that keeps ending at once is no busy loop
_SWITCH_TIMEOUT = 960.0  # an adapter switch waits for the server's running batch (it gives up at 900 s)

_decode_problem = msgspec.json.Decoder(Problem).decode
_decode_event = msgspec.json.Decoder(JobEvent).decode


class _Removed(msgspec.Struct):
    """The answer of DELETE /v1/summaries/{id}."""

    id: str
    outcome: str


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds; the HTTP-date form is not used by the service, so it reads as absent."""
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None


def _api_error(response: httpx.Response) -> ApiError:
    """The typed error for an error answer; a body that is no Problem (say, a proxy's page) gets one."""
    try:
        problem = _decode_problem(response.content)
    except msgspec.DecodeError:
        problem = Problem(type="about:blank", title=response.reason_phrase or "HTTP error",
                          status=response.status_code, detail=response.text[:200])
    status = response.status_code
    kind = _STATUS_ERRORS.get(status) or (ServerError if status >= 500 else ApiError)
    return kind(problem, _retry_after(response))


def _reader(kind: type[T]) -> Callable[[httpx.Response], T]:
    decode = msgspec.json.Decoder(kind).decode

    def read(response: httpx.Response) -> T:
        if response.is_error:
            raise _api_error(response)
        return decode(response.content)

    return read


_read_accepted = _reader(JobAccepted)
_read_estimate = _reader(EstimateRead)
_read_job = _reader(JobRead)
_read_tree = _reader(TreeRead)
_read_node = _reader(NodeRead)
_read_removed = _reader(_Removed)
_read_report = _reader(ReportRead)
_read_reports = _reader(list[ReportRead])
_read_comparison = _reader(ComparisonRead)
_read_task = _reader(EvaluationTask)
_decode_record = msgspec.json.Decoder(ComparisonRecord).decode


def _read_next_task(response: httpx.Response) -> EvaluationTask | None:
    """The leased task, or None for 204 (no task is waiting)."""
    return None if response.status_code == 204 else _read_task(response)


def _text_body(text: str, title: str, options: SummaryOptions | None,
               callback_url: str | None) -> dict[str, Any]:
    """A submission as JSON (`POST /v1/summaries` and `/v1/estimates` take the same body)."""
    body = SummaryCreate(text=text, title=title, options=options or SummaryOptions(),
                         callback_url=callback_url)
    return {"content": msgspec.json.encode(body), "headers": {"content-type": "application/json"}}


def _file_body(path: str | Path, title: str, options: SummaryOptions | None) -> dict[str, Any]:
    """A submission as a multipart upload, read into memory (the service caps documents anyway) so that a
    retry can send it again."""
    path = Path(path)
    form = {"options": msgspec.json.encode(options or SummaryOptions()).decode()}
    if title:
        form["title"] = title
    return {"data": form, "files": {"file": (path.name, path.read_bytes(), "text/plain")}}


def _read_export(response: httpx.Response) -> list[ComparisonRecord]:
    """The records, once their count matches the count the server announced (a cut stream is an error)."""
    if response.is_error:
        raise _api_error(response)
    records = [_decode_record(line) for line in response.content.splitlines() if line.strip()]
    announced = response.headers.get("x-recursum-export-count")
    if announced is not None and int(announced) != len(records):
        raise TransportError(f"the comparisons export was cut short: {len(records)} of {announced} records")
    return records


def _read_export_window(response: httpx.Response) -> ComparisonExport:
    """The records and the cursor that continues after them."""
    records = _read_export(response)
    return ComparisonExport(records=records, through=int(response.headers["x-recursum-export-through"]))


def _answers_ok(response: httpx.Response) -> bool:
    return response.status_code == 200


@dataclass(frozen=True)
class _Call(Generic[T]):
    """One request (httpx keyword arguments) and how to read its answer."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    request: dict[str, Any] = field(default_factory=dict)
    retried: bool = True  # probes answer at once: their 503 is the answer, not a reason to wait
    unreachable: T | None = None  # a probe's answer when the server cannot be reached; None raises


class _Watch:
    """Follows one job's event stream: SSE lines in, the finished job (or the reason it is not) out."""

    def __init__(self, job_id: str, on_event: EventHandler | None, timeout: float | None,
                 http_timeout: float) -> None:
        self.job_id = job_id
        self.path = f"/v1/summaries/{job_id}/events"
        self._on_event = on_event
        self._timeout = timeout
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._http_timeout = http_timeout
        self._data: list[str] = []
        self._fruitless = 0  # connections in a row that delivered no event
        self._delivered = True

    def connect(self) -> dict[str, Any]:
        """Request options of a (re)connection; a dropped stream's partial event is discarded."""
        self._data.clear()
        self._fruitless = 0 if self._delivered else self._fruitless + 1
        self._delivered = False
        read = None if self._deadline is None else self._deadline - time.monotonic()
        if read is not None and read <= 0:
            raise self.timed_out()
        return {"headers": {"accept": "text/event-stream"},
                "timeout": httpx.Timeout(self._http_timeout, read=read)}

    def feed(self, line: str) -> JobRead | None:
        """Take one SSE line; the job once its `finished` event arrives. Only `data:` matters:
        the event name repeats the union's tag, which the typed decoder reads from the data."""
        if line.startswith("data:"):
            self._data.append(line.removeprefix("data:").removeprefix(" "))
        elif not line and self._data:
            event = _decode_event("\n".join(self._data))
            self._data.clear()
            return self._dispatch(event)
        return None

    def _dispatch(self, event: JobEvent) -> JobRead | None:
        self._delivered = True
        if self._on_event is not None:
            self._on_event(event)
        match event:
            case JobFinished(job=job) if job.status == "done":
                return job
            case JobFinished(job=job):
                raise JobFailed(job)
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise self.timed_out()
        return None

    def _retry(self) -> bool:
        return self._delivered or self._fruitless + 1 < _STREAM_CONNECTIONS

    def dropped(self, error: httpx.TransportError) -> RecursumClientError | None:
        """What to raise when the stream breaks, or None to reconnect."""
        if isinstance(error, httpx.ReadTimeout) and self._deadline is not None:
            return self.timed_out()
        if self._retry():
            return None
        return TransportError(f"the event stream of job {self.job_id} broke: {type(error).__name__}: {error}")

    def ended(self) -> TransportError | None:
        """What to raise when the stream ended before `finished`, or None to reconnect."""
        if self._retry():
            return None
        return TransportError(f"the event stream of job {self.job_id} ended {_STREAM_CONNECTIONS} times "
                              "without an event before the job finished")

    def timed_out(self) -> WaitTimeout:
        return WaitTimeout(f"job {self.job_id} did not finish within {self._timeout:g} s")


class _BaseClient:
    """Request building and answer decoding shared by `Client` and `AsyncClient`."""

    def __init__(self, base_url: str, api_key: str | None, *, timeout: float, max_retries: int,
                 backoff: float) -> None:
        self.base_url = base_url
        self._api_key = api_key
        self._timeout = timeout
        self._max_retries = max_retries
        self._backoff = backoff

    def _http_options(self) -> dict[str, Any]:
        headers = {"user-agent": "recursum-client"}
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        return {"base_url": self.base_url, "headers": headers, "timeout": self._timeout}

    def _submit_call(self, text: str, title: str, options: SummaryOptions | None,
                     callback_url: str | None) -> _Call[JobAccepted]:
        return _Call("POST", "/v1/summaries", _read_accepted, _text_body(text, title, options, callback_url))

    def _submit_file_call(self, path: str | Path, title: str,
                          options: SummaryOptions | None) -> _Call[JobAccepted]:
        return _Call("POST", "/v1/summaries", _read_accepted, _file_body(path, title, options))

    def _estimate_call(self, text: str, title: str, options: SummaryOptions | None) -> _Call[EstimateRead]:
        return _Call("POST", "/v1/estimates", _read_estimate, _text_body(text, title, options, None))

    def _estimate_file_call(self, path: str | Path, title: str,
                            options: SummaryOptions | None) -> _Call[EstimateRead]:
        return _Call("POST", "/v1/estimates", _read_estimate, _file_body(path, title, options))

    def _get_call(self, job_id: str) -> _Call[JobRead]:
        return _Call("GET", f"/v1/summaries/{job_id}", _read_job)

    def _watch(self, job_id: str, on_event: EventHandler | None, timeout: float | None) -> _Watch:
        return _Watch(job_id, on_event, timeout, self._timeout)

    def _tree_call(self, job_id: str) -> _Call[TreeRead]:
        return _Call("GET", f"/v1/summaries/{job_id}/tree", _read_tree)

    def _node_call(self, job_id: str, node_id: str, include_source: bool) -> _Call[NodeRead]:
        params = {"include": "source"} if include_source else {}
        return _Call("GET", f"/v1/summaries/{job_id}/nodes/{node_id}", _read_node, {"params": params})

    def _cancel_call(self, job_id: str) -> _Call[str]:
        return _Call("DELETE", f"/v1/summaries/{job_id}", lambda response: _read_removed(response).outcome)

    def _request_report_call(self, job_id: str, node_id: str, request: ReportCreate) -> _Call[ReportRead]:
        body = {"content": msgspec.json.encode(request), "headers": {"content-type": "application/json"}}
        return _Call("POST", f"/v1/summaries/{job_id}/nodes/{node_id}/reports", _read_report, body)

    def _reports_call(self, job_id: str, node_id: str, kind: ReportKind | None) -> _Call[list[ReportRead]]:
        params = {} if kind is None else {"kind": kind}
        return _Call("GET", f"/v1/summaries/{job_id}/nodes/{node_id}/reports", _read_reports,
                     {"params": params})

    def _report_call(self, job_id: str, node_id: str, report_id: str) -> _Call[ReportRead]:
        return _Call("GET", f"/v1/summaries/{job_id}/nodes/{node_id}/reports/{report_id}", _read_report)

    @staticmethod
    def _report_deadline(report: ReportRead, timeout: float, started: float) -> bool:
        """Whether to keep polling a report; raises WaitTimeout once `timeout` has passed."""
        if report.status != "pending":
            return False
        if time.monotonic() - started > timeout:
            raise WaitTimeout(f"report {report.id} still pending after {timeout:g} s")
        return True

    def _next_task_call(self, height: int | None, role: str | None,
                        kind: EvaluationKind | None) -> _Call[EvaluationTask | None]:
        params = {name: value for name, value in (("height", height), ("role", role), ("kind", kind))
                  if value is not None}
        return _Call("GET", "/v1/evaluations/tasks", _read_next_task, {"params": params})

    def _compare_call(self, task_id: str, preference: Preference, confidence: float | None, rationale: str,
                      reports_opened: tuple[str, ...] | list[str],
                      flagged: tuple[FlaggedItem, ...] | list[FlaggedItem]) -> _Call[ComparisonRead]:
        body = ComparisonCreate(task=task_id, preference=preference, confidence=confidence,
                                rationale=rationale, reports_opened=tuple(reports_opened),
                                flagged=tuple(flagged))
        return _Call("POST", "/v1/comparisons", _read_comparison,
                     {"content": msgspec.json.encode(body), "headers": {"content-type": "application/json"}})

    def _comparison_call(self, comparison_id: str) -> _Call[ComparisonRead]:
        return _Call("GET", f"/v1/comparisons/{comparison_id}", _read_comparison)

    def _export_call(self, since: str | float | None) -> _Call[list[ComparisonRecord]]:
        params = {"format": "jsonl"} | ({} if since is None else {"since": str(since)})
        return _Call("GET", "/v1/comparisons/export", _read_export, {"params": params})

    def _export_after_call(self, after: int) -> _Call[ComparisonExport]:
        return _Call("GET", "/v1/comparisons/export", _read_export_window,
                     {"params": {"format": "jsonl", "after": str(after)}})

    def _stats_call(self, mine: bool) -> _Call[EvaluationStats] | _Call[EvaluatorStats]:
        if mine:
            return _Call("GET", "/v1/evaluations/stats/me", _reader(EvaluatorStats))
        return _Call("GET", "/v1/evaluations/stats", _reader(EvaluationStats))

    def _adapters_call(self) -> _Call[AdaptersRead]:
        return _Call("GET", "/v1/admin/adapters", _reader(AdaptersRead))

    def _activate_call(self, directory: str | None) -> _Call[AdaptersRead]:
        """The server answers once its running batch drains and it serves the bundle: minutes on a CPU."""
        body = AdapterActivate(directory=directory or "none")
        return _Call("POST", "/v1/admin/adapters", _reader(AdaptersRead),
                     {"content": msgspec.json.encode(body), "headers": {"content-type": "application/json"},
                      "timeout": _SWITCH_TIMEOUT})

    def _rollback_call(self) -> _Call[AdaptersRead]:
        return _Call("POST", "/v1/admin/adapters/rollback", _reader(AdaptersRead),
                     {"timeout": _SWITCH_TIMEOUT})

    def _probe_call(self, path: str) -> _Call[bool]:
        return _Call("GET", path, _answers_ok, retried=False, unreachable=False)

    def _retry_delay(self, call: _Call[Any], response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before asking again, or None to take this answer as final."""
        if not call.retried or response.status_code not in _RETRIED_STATUSES or attempt >= self._max_retries:
            return None
        delay = _retry_after(response)
        return self._backoff * 2**attempt if delay is None else delay

    def _unreachable(self, call: _Call[T], error: httpx.TransportError) -> T:
        if call.unreachable is not None:
            return call.unreachable
        raise TransportError(f"{call.method} {self.base_url.rstrip('/')}{call.path}: "
                             f"{type(error).__name__}: {error}") from error


class Client(_BaseClient):
    """Blocking client: `with Client(url, api_key) as c: job = c.wait(c.submit(text).id)`.

    429 and 503 answers are retried up to `max_retries` times, after Retry-After seconds (or
    `backoff * 2**attempt` when absent); `transport` replaces the network (tests use MockTransport).
    """

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 30.0,
                 max_retries: int = 3, backoff: float = 1.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(base_url, api_key, timeout=timeout, max_retries=max_retries, backoff=backoff)
        self._http = httpx.Client(transport=transport, **self._http_options())

    def submit(self, text: str, title: str = "", options: SummaryOptions | None = None,
               callback_url: str | None = None) -> JobAccepted:
        """Queue `text` for summarization; answers at once with the job's id and URL."""
        return self._send(self._submit_call(text, title, options, callback_url))

    def submit_file(self, path: str | Path, title: str = "",
                    options: SummaryOptions | None = None) -> JobAccepted:
        """Upload a text file (multipart); the server decodes it and titles it by its name by default."""
        return self._send(self._submit_file_call(path, title, options))

    def estimate(self, text: str, title: str = "", options: SummaryOptions | None = None) -> EstimateRead:
        """What summarizing `text` would cost (chunks, nodes, tokens, seconds), without queueing it."""
        return self._send(self._estimate_call(text, title, options))

    def estimate_file(self, path: str | Path, title: str = "",
                      options: SummaryOptions | None = None) -> EstimateRead:
        """`estimate` for a text file, uploaded as `submit_file` would."""
        return self._send(self._estimate_file_call(path, title, options))

    def get(self, job_id: str) -> JobRead:
        """The job's status, progress per height, and its root summary once done."""
        return self._send(self._get_call(job_id))

    def wait(self, job_id: str, on_event: EventHandler | None = None,
             timeout: float | None = None) -> JobRead:
        """Follow the job's event stream until it finishes and return its final state.

        `on_event` sees every event. Raises JobFailed when the job fails or is cancelled, and
        WaitTimeout once `timeout` seconds have passed (checked as events arrive, and no silence
        lasts longer). A stream that ends or drops before `finished` is reconnected, for as long as each
        connection delivers events (the server ends streams past their lifetime).
        """
        watch = self._watch(job_id, on_event, timeout)
        while True:
            try:
                with self._http.stream("GET", watch.path, **watch.connect()) as response:
                    if response.is_error:
                        response.read()
                        raise _api_error(response)
                    for line in response.iter_lines():
                        if (job := watch.feed(line)) is not None:
                            return job
            except httpx.TransportError as error:
                if (failure := watch.dropped(error)) is not None:
                    raise failure from error
            else:
                if (failure := watch.ended()) is not None:
                    raise failure
            time.sleep(_RECONNECT_PAUSE)

    def tree(self, job_id: str) -> TreeRead:
        """Every node finished so far, with spans, children, sentences and evidence."""
        return self._send(self._tree_call(job_id))

    def node(self, job_id: str, node_id: str, include_source: bool = False) -> NodeRead:
        """One node; `include_source` adds a leaf's original text."""
        return self._send(self._node_call(job_id, node_id, include_source))

    def cancel(self, job_id: str) -> str:
        """Cancel or delete a job: "cancelled" (still queued), "cancelling" (its worker stops it) or
        "deleted" (it had finished)."""
        return self._send(self._cancel_call(job_id))

    def request_report(self, job_id: str, node_id: str, request: ReportCreate) -> ReportRead:
        """Ask for a report about a node of a finished job (the same request returns the same report):
        `evidence` and `compare` come back done, `critique` and `qa` pending until `wait_report`."""
        return self._send(self._request_report_call(job_id, node_id, request))

    def reports(self, job_id: str, node_id: str, kind: ReportKind | None = None) -> list[ReportRead]:
        """The node's reports, oldest first (only those of `kind` if given)."""
        return self._send(self._reports_call(job_id, node_id, kind))

    def report(self, job_id: str, node_id: str, report_id: str) -> ReportRead:
        return self._send(self._report_call(job_id, node_id, report_id))

    def wait_report(self, report: ReportRead, timeout: float = 300.0, poll: float = 1.0) -> ReportRead:
        """Poll a pending report until it is done or failed; WaitTimeout after `timeout` seconds."""
        started = time.monotonic()
        while self._report_deadline(report, timeout, started):
            time.sleep(poll)
            report = self.report(report.job_id, report.node_id, report.id)
        return report

    def next_task(self, height: int | None = None, role: str | None = None,
                  kind: EvaluationKind | None = None) -> EvaluationTask | None:
        """The comparison task leased to this key (or a new lease on the next one); None when none waits."""
        return self._send(self._next_task_call(height, role, kind))

    def compare(self, task_id: str, preference: Preference, confidence: float | None = None,
                rationale: str = "", reports_opened: tuple[str, ...] | list[str] = (),
                flagged: tuple[FlaggedItem, ...] | list[FlaggedItem] = ()) -> ComparisonRead:
        """Answer a leased task: 0 / 1 prefers its first / second candidate. Conflict (409) when the lease
        was answered already or expired."""
        return self._send(self._compare_call(task_id, preference, confidence, rationale, reports_opened,
                                             flagged))

    def comparison(self, comparison_id: str) -> ComparisonRead:
        """One comparison this key submitted (any, with admin)."""
        return self._send(self._comparison_call(comparison_id))

    def export_comparisons(self, since: str | float | None = None) -> list[ComparisonRecord]:
        """Comparisons created at or after `since` (epoch seconds or ISO 8601) as training records (admin)."""
        return self._send(self._export_call(since))

    def evaluation_stats(self) -> EvaluationStats:
        """Every evaluator's record and agreement overall (admin)."""
        return self._send(self._stats_call(mine=False))

    def my_evaluation_stats(self) -> EvaluatorStats:
        """This key's own evaluator record."""
        return self._send(self._stats_call(mine=True))

    def export_after(self, after: int = 0) -> ComparisonExport:
        """Comparisons stored after cursor `after` and the cursor to continue from next time (admin): each
        comparison comes once however often this is called."""
        return self._send(self._export_after_call(after))

    def adapters(self) -> AdaptersRead:
        """The adapter bundle served, the one before it, and what this replica serves (admin)."""
        return self._send(self._adapters_call())

    def activate_adapters(self, directory: str | None) -> AdaptersRead:
        """Serve the bundle at `directory` (absolute, on the server; None: the bare model) on every replica
        (admin). `BadRequest` (422) with the reason when the bundle is refused; nothing changes then."""
        return self._send(self._activate_call(directory))

    def rollback_adapters(self) -> AdaptersRead:
        """Serve the bundle served before the current one again (admin)."""
        return self._send(self._rollback_call())

    def health(self) -> bool:
        """True when the process answers /healthz; False when it errs or cannot be reached."""
        return self._send(self._probe_call("/healthz"))

    def ready(self) -> bool:
        """True when /readyz says the model is loaded and answering; never waits for it."""
        return self._send(self._probe_call("/readyz"))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _send(self, call: _Call[T]) -> T:
        attempt = 0
        while True:
            try:
                response = self._http.request(call.method, call.path, **call.request)
            except httpx.TransportError as error:
                return self._unreachable(call, error)
            delay = self._retry_delay(call, response, attempt)
            if delay is None:
                return call.read(response)
            time.sleep(delay)
            attempt += 1


class AsyncClient(_BaseClient):
    """The asyncio twin of `Client`: the same methods, awaited; `async with AsyncClient(url) as c`."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 30.0,
                 max_retries: int = 3, backoff: float = 1.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(base_url, api_key, timeout=timeout, max_retries=max_retries, backoff=backoff)
        self._http = httpx.AsyncClient(transport=transport, **self._http_options())

    async def submit(self, text: str, title: str = "", options: SummaryOptions | None = None,
                     callback_url: str | None = None) -> JobAccepted:
        return await self._send(self._submit_call(text, title, options, callback_url))

    async def submit_file(self, path: str | Path, title: str = "",
                          options: SummaryOptions | None = None) -> JobAccepted:
        return await self._send(self._submit_file_call(path, title, options))

    async def estimate(self, text: str, title: str = "", options: SummaryOptions | None = None,
                       ) -> EstimateRead:
        return await self._send(self._estimate_call(text, title, options))

    async def estimate_file(self, path: str | Path, title: str = "",
                            options: SummaryOptions | None = None) -> EstimateRead:
        return await self._send(self._estimate_file_call(path, title, options))

    async def get(self, job_id: str) -> JobRead:
        return await self._send(self._get_call(job_id))

    async def wait(self, job_id: str, on_event: EventHandler | None = None,
                   timeout: float | None = None) -> JobRead:
        watch = self._watch(job_id, on_event, timeout)
        while True:
            try:
                async with self._http.stream("GET", watch.path, **watch.connect()) as response:
                    if response.is_error:
                        await response.aread()
                        raise _api_error(response)
                    async for line in response.aiter_lines():
                        if (job := watch.feed(line)) is not None:
                            return job
            except httpx.TransportError as error:
                if (failure := watch.dropped(error)) is not None:
                    raise failure from error
            else:
                if (failure := watch.ended()) is not None:
                    raise failure
            await asyncio.sleep(_RECONNECT_PAUSE)

    async def tree(self, job_id: str) -> TreeRead:
        return await self._send(self._tree_call(job_id))

    async def node(self, job_id: str, node_id: str, include_source: bool = False) -> NodeRead:
        return await self._send(self._node_call(job_id, node_id, include_source))

    async def cancel(self, job_id: str) -> str:
        return await self._send(self._cancel_call(job_id))

    async def request_report(self, job_id: str, node_id: str, request: ReportCreate) -> ReportRead:
        return await self._send(self._request_report_call(job_id, node_id, request))

    async def reports(self, job_id: str, node_id: str, kind: ReportKind | None = None) -> list[ReportRead]:
        return await self._send(self._reports_call(job_id, node_id, kind))

    async def report(self, job_id: str, node_id: str, report_id: str) -> ReportRead:
        return await self._send(self._report_call(job_id, node_id, report_id))

    async def wait_report(self, report: ReportRead, timeout: float = 300.0, poll: float = 1.0) -> ReportRead:
        started = time.monotonic()
        while self._report_deadline(report, timeout, started):
            await asyncio.sleep(poll)
            report = await self.report(report.job_id, report.node_id, report.id)
        return report

    async def next_task(self, height: int | None = None, role: str | None = None,
                        kind: EvaluationKind | None = None) -> EvaluationTask | None:
        return await self._send(self._next_task_call(height, role, kind))

    async def compare(self, task_id: str, preference: Preference, confidence: float | None = None,
                      rationale: str = "", reports_opened: tuple[str, ...] | list[str] = (),
                      flagged: tuple[FlaggedItem, ...] | list[FlaggedItem] = ()) -> ComparisonRead:
        return await self._send(self._compare_call(task_id, preference, confidence, rationale, reports_opened,
                                                   flagged))

    async def comparison(self, comparison_id: str) -> ComparisonRead:
        return await self._send(self._comparison_call(comparison_id))

    async def export_comparisons(self, since: str | float | None = None) -> list[ComparisonRecord]:
        return await self._send(self._export_call(since))

    async def evaluation_stats(self) -> EvaluationStats:
        return await self._send(self._stats_call(mine=False))

    async def my_evaluation_stats(self) -> EvaluatorStats:
        return await self._send(self._stats_call(mine=True))

    async def export_after(self, after: int = 0) -> ComparisonExport:
        return await self._send(self._export_after_call(after))

    async def adapters(self) -> AdaptersRead:
        return await self._send(self._adapters_call())

    async def activate_adapters(self, directory: str | None) -> AdaptersRead:
        return await self._send(self._activate_call(directory))

    async def rollback_adapters(self) -> AdaptersRead:
        return await self._send(self._rollback_call())

    async def health(self) -> bool:
        return await self._send(self._probe_call("/healthz"))

    async def ready(self) -> bool:
        return await self._send(self._probe_call("/readyz"))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _send(self, call: _Call[T]) -> T:
        attempt = 0
        while True:
            try:
                response = await self._http.request(call.method, call.path, **call.request)
            except httpx.TransportError as error:
                return self._unreachable(call, error)
            delay = self._retry_delay(call, response, attempt)
            if delay is None:
                return call.read(response)
            await asyncio.sleep(delay)
            attempt += 1
