"""Route of /v1/estimates: what a submission would cost, answered without queueing it."""

from litestar import Controller, Request, post
from litestar.concurrency import sync_to_thread

from recursum.schemas.jobs import EstimateRead
from recursum.service.api.summaries.controller import Summaries, read_submission
from recursum.service.api.summaries.openapi import SubmissionOperation


class EstimateController(Controller):
    path = "/v1/estimates"
    tags = ["summaries"]

    @post("/", status_code=200, opt={"scope": "summarize"}, operation_class=SubmissionOperation)
    async def estimate(self, request: Request, summaries: Summaries) -> EstimateRead:
        """The body of `POST /v1/summaries`: its chunks, nodes per height, prompt and generated tokens, and
        the seconds it would take at this replica's recent throughput."""
        submission = await read_submission(request, summaries.max_bytes)
        return await sync_to_thread(summaries.estimate, submission, request.app.state.worker.throughput)
