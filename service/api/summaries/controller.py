"""Routes of /v1/summaries: thin handlers over `SummaryService`."""

import asyncio
import time
from collections.abc import AsyncIterator

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.concurrency import sync_to_thread
from litestar.di import NamedDependency
from litestar.params import FromPath, Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.status_codes import HTTP_202_ACCEPTED

from recursum.schemas.events import JobEvent, JobFinished, JobState
from recursum.schemas.jobs import FINISHED, JobAccepted, JobRead, NodeRead, SummaryCreate, TreeRead
from recursum.service.api.problems import MalformedForm, StreamsExhausted, UnsupportedMedia
from recursum.service.api.summaries.openapi import SubmissionOperation
from recursum.service.api.summaries.service import SummaryService
from recursum.service.engine.pipeline.document import decode_document_bytes
from recursum.service.jobs.broker import TooManyStreams
from recursum.service.jobs.views import job_read
from recursum.service.jobs.worker import JobWorker

_decode_create = msgspec.json.Decoder(SummaryCreate).decode
# Explicit parameter kinds (Litestar 3 drops inference from names).
Summaries = NamedDependency[SummaryService]
PathId = FromPath[str]
_POLL_SECONDS = 1.0  # how often an SSE stream checks the store between live events


async def read_submission(request: Request, max_bytes: int) -> SummaryCreate:
    """A document as JSON, as text/plain, or as a multipart upload (field `file`); every form is validated
    against `SummaryCreate`, so its bounds hold whichever way the document came."""
    media_type = request.content_type[0]
    if media_type == "application/json":
        return _decode_create(await request.body())
    if media_type == "text/plain":
        text = decode_document_bytes(await request.body(), max_bytes)
        return msgspec.convert({"text": text, "title": request.query_params.get("title", "")}, SummaryCreate)
    if media_type == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise UnsupportedMedia("a multipart submission needs the document in a `file` field")
        title, options = form.get("title"), form.get("options")
        for name, value in (("title", title), ("options", options)):
            if value is not None and not isinstance(value, str):
                raise MalformedForm(f"the multipart `{name}` must be a text field, not a file")
        text = decode_document_bytes(await upload.read(), max_bytes)
        return msgspec.convert({"text": text, "title": title or upload.filename or "",
                                "options": msgspec.json.decode(options or "{}")}, SummaryCreate)
    raise UnsupportedMedia("send application/json, text/plain or multipart/form-data")


def _sse(event: JobEvent) -> ServerSentEventMessage:
    tag = type(event).__struct_config__.tag
    return ServerSentEventMessage(data=msgspec.json.encode(event).decode(), event=tag)


class SummaryController(Controller):
    path = "/v1/summaries"
    tags = ["summaries"]

    @post("/", status_code=HTTP_202_ACCEPTED, opt={"scope": "summarize"}, operation_class=SubmissionOperation)
    async def submit(self, request: Request, summaries: Summaries) -> JobAccepted:
        """Queue a document for summarization; answers 202 with the job id and URL."""
        await sync_to_thread(summaries.check_capacity, request.state.principal)
        submission = await read_submission(request, summaries.max_bytes)
        job = await sync_to_thread(summaries.submit, submission, request.state.principal)
        worker = request.app.state.worker
        worker.notify()
        reward_loaded = worker.engine is not None and worker.engine.scores_rewards
        return summaries.accepted(job, f"{self.path}/{job.id}", reward_loaded)

    @get("/{job_id:str}", opt={"scope": "summarize"}, sync_to_thread=True)
    def read(self, request: Request, job_id: PathId, summaries: Summaries) -> JobRead:
        """Status, progress per height, and the root summary once done."""
        job = summaries.job(job_id, request.state.principal)
        return job_read(summaries.store, job)

    @get("/{job_id:str}/tree", opt={"scope": "summarize"}, sync_to_thread=True)
    def tree(self, request: Request, job_id: PathId, summaries: Summaries) -> TreeRead:
        """Every node finished so far, with spans, children, sentences and evidence."""
        job = summaries.job(job_id, request.state.principal)
        engine = request.app.state.worker.engine
        return summaries.tree(job, engine.info if engine else None)

    @get("/{job_id:str}/nodes/{node_id:str}", opt={"scope": "summarize"}, sync_to_thread=True)
    def node(self, request: Request, job_id: PathId, node_id: PathId, summaries: Summaries,
             include: str | None = Parameter(default=None, description="`source` adds a leaf's text"),
             ) -> NodeRead:
        job = summaries.job(job_id, request.state.principal)
        return summaries.node(job, node_id, include == "source")

    @delete("/{job_id:str}", status_code=200, opt={"scope": "summarize"}, sync_to_thread=True)
    def remove(self, request: Request, job_id: PathId, summaries: Summaries) -> dict[str, str]:
        """Cancel a running job (generation stops at the next step) or delete a finished one."""
        job = summaries.job(job_id, request.state.principal)
        outcome = summaries.delete(job)
        worker = request.app.state.worker
        if outcome == "cancelling":
            worker.cancel(job.id)
        elif outcome == "cancelled":
            worker.announce_end(summaries.store.jobs.get_job(job.id))
        return {"id": job.id, "outcome": outcome}

    @staticmethod
    def _poll(summaries: SummaryService, job_id: str, last: JobRead,
              worker: JobWorker) -> JobState | JobFinished | None:
        """The job's state from the store when it changed and no local event reported it."""
        job = summaries.store.jobs.get_job(job_id)
        if job is None:  # deleted meanwhile
            return JobFinished(job=msgspec.structs.replace(last, status="cancelled"))
        current = job_read(summaries.store, job)
        if job.status in FINISHED:
            return JobFinished(job=current)
        if worker.is_running(job_id) or current.progress == last.progress:
            return None
        return JobState(job=current)

    @get("/{job_id:str}/events", opt={"scope": "summarize"})
    async def events(self, request: Request, job_id: PathId, summaries: Summaries) -> ServerSentEvent:
        """Server-Sent Events: the current state first, then progress until the job ends."""
        principal = request.state.principal
        job = await sync_to_thread(summaries.job, job_id, principal)
        broker, worker = request.app.state.broker, request.app.state.worker
        try:
            subscription = broker.subscribe(job.id, principal.name)
        except TooManyStreams as error:
            raise StreamsExhausted(str(error), headers={"Retry-After": "5"}) from None
        closes = time.monotonic() + broker.limits.seconds

        async def stream() -> AsyncIterator[ServerSentEventMessage]:
            try:
                state = await sync_to_thread(job_read, summaries.store, job)
                if job.status in FINISHED:
                    yield _sse(JobFinished(job=state))
                    return
                yield _sse(JobState(job=state))
                # Past its lifetime, or too far behind to be kept, a stream ends; the client reconnects
                # and reads the current state first.
                while time.monotonic() < closes and not subscription.overflowed:
                    try:
                        event = await asyncio.wait_for(subscription.queue.get(), timeout=_POLL_SECONDS)
                    except TimeoutError:
                        # Another replica may be running the job: follow it through the store.
                        update = await sync_to_thread(self._poll, summaries, job.id, state, worker)
                        if update is None:
                            continue
                        state = update.job
                        event = update
                    yield _sse(event)
                    if isinstance(event, JobFinished):
                        return
            finally:
                broker.unsubscribe(subscription)

        return ServerSentEvent(stream())
