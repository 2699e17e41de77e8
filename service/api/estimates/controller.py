"""Route of /v1/estimates: what a submission would cost, answered without queueing it."""

from collections import Counter

from litestar import Controller, Request, post
from litestar.concurrency import sync_to_thread

from recursum.schemas.jobs import EstimateRead
from recursum.service.api.problems import QuotaReached
from recursum.service.api.summaries.controller import Summaries, read_submission
from recursum.service.api.summaries.openapi import SubmissionOperation

ESTIMATES_PER_KEY = 2  # at once: an estimate chunks the whole document, seconds of CPU for a large one


class EstimateController(Controller):
    path = "/v1/estimates"
    tags = ["summaries"]

    @post("/", status_code=200, opt={"scope": "summarize"}, operation_class=SubmissionOperation)
    async def estimate(self, request: Request, summaries: Summaries) -> EstimateRead:
        """The body of `POST /v1/summaries`: its chunks, nodes per height, prompt and generated tokens, and
        the seconds it would take at this replica's recent throughput."""
        running: Counter[str] = request.app.state.estimating  # touched on the event loop only
        name = request.state.principal.name
        if running[name] >= ESTIMATES_PER_KEY:
            raise QuotaReached(f"this API key has {ESTIMATES_PER_KEY} estimates running; retry when one "
                               "answers", headers={"Retry-After": "1"})
        running[name] += 1
        try:
            submission = await read_submission(request, summaries.max_bytes)
            return await sync_to_thread(summaries.estimate, submission, request.app.state.worker.throughput)
        finally:
            running[name] -= 1
