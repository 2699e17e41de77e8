"""Routes of /v1/evaluations and /v1/comparisons: thin handlers over `EvaluationService`."""

from collections.abc import Iterator
from typing import Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody, Parameter
from litestar.response import Stream
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from recursum.schemas.evaluations import (
    ComparisonCreate,
    ComparisonRead,
    ComparisonRecord,
    EvaluationKind,
    EvaluationStats,
    EvaluationTask,
    EvaluatorStats,
)
from recursum.service.api.evaluations.service import EvaluationService
from recursum.service.api.evaluations.stats import evaluation_stats, evaluator_stats

Evaluations = NamedDependency[EvaluationService]
PathId = FromPath[str]
JSONL = "application/jsonl"
_encode = msgspec.json.Encoder().encode
HEIGHT_FILTER = Parameter(default=None, ge=0, le=64, description="only nodes of this height")
ROLE_FILTER = Parameter(default=None, description="only chunk nodes (height 0) or merge nodes")
KIND_FILTER = Parameter(default=None, description="summary or critique pairs (default: either)")
FORMAT = Parameter(default="jsonl", description="jsonl: one training Comparison a line")
SINCE = Parameter(default=None, max_length=64,
                  description="epoch seconds or ISO 8601 time: only comparisons created then or later")


AFTER = Parameter(default=0, ge=0, le=2**62, description="only comparisons stored after this one "
                                             "(the X-Recursum-Export-Through of an earlier export)")
EXPORT_COUNT, EXPORT_THROUGH = "X-Recursum-Export-Count", "X-Recursum-Export-Through"


def _lines(records: Iterator[ComparisonRecord]) -> Iterator[bytes]:
    for record in records:
        yield _encode(record) + b"\n"


class EvaluationController(Controller):
    path = "/v1/evaluations"
    tags = ["evaluations"]

    @get("/tasks", opt={"scope": "evaluate"}, sync_to_thread=True,
         responses={HTTP_204_NO_CONTENT: ResponseSpec(None, description="No task is waiting for you")})
    def next_task(
        self, request: Request, evaluations: Evaluations, height: int | None = HEIGHT_FILTER,
        role: Literal["chunk", "merge"] | None = ROLE_FILTER, kind: EvaluationKind | None = KIND_FILTER,
    ) -> Response[EvaluationTask]:
        """The task leased to you, or a new lease on the oldest pair you have not judged; 204 when none.

        Asking again returns the same task until it is answered or its lease expires; asking with
        filters it does not match gives it back and leases another.
        """
        task = evaluations.next_task(request.state.principal, (height, role, kind))
        if task is None:
            return Response(None, status_code=HTTP_204_NO_CONTENT)
        return Response(task)

    @get("/stats", opt={"scope": "admin"}, sync_to_thread=True)
    def stats(self, evaluations: Evaluations) -> EvaluationStats:
        """Per evaluator: judged, gold accuracy, agreement with the majority on overlapped pairs, median
        seconds per task, reports opened; overall: agreement between evaluators, and with reports opened vs
        without."""
        return evaluation_stats(evaluations.store.evaluations.judgements())

    @get("/stats/me", opt={"scope": "evaluate"}, sync_to_thread=True)
    def my_stats(self, request: Request, evaluations: Evaluations) -> EvaluatorStats:
        """Your own figures (what the /evaluate page shows you)."""
        return evaluator_stats(evaluations.store.evaluations.judgements(), request.state.principal.name)


class ComparisonController(Controller):
    path = "/v1/comparisons"
    tags = ["evaluations"]

    @post("/", status_code=HTTP_201_CREATED, opt={"scope": "evaluate"}, sync_to_thread=True)
    def submit(self, request: Request, data: JSONBody[ComparisonCreate],
               evaluations: Evaluations) -> ComparisonRead:
        """Answer a leased task; 409 when the lease is answered, expired or no longer yours."""
        return evaluations.submit(request.state.principal, data)

    @get("/export", opt={"scope": "admin"}, sync_to_thread=True, media_type=JSONL)
    def export(self, evaluations: Evaluations, format: Literal["jsonl"] = FORMAT,
               since: str | None = SINCE, after: int = AFTER,
    ) -> Stream:
        """Comparisons as JSON lines of the training `Comparison` schema, in the order they were stored.
        `X-Recursum-Export-Count` says how many lines a complete answer has; `X-Recursum-Export-Through`
        is the `after` that continues from here."""
        window = evaluations.export(since, after)
        return Stream(_lines(window.records), media_type=JSONL,
                      headers={EXPORT_COUNT: str(window.count), EXPORT_THROUGH: str(window.through)})

    @get("/{comparison_id:str}", opt={"scope": "evaluate"}, sync_to_thread=True)
    def read(self, request: Request, comparison_id: PathId, evaluations: Evaluations) -> ComparisonRead:
        """One of your comparisons (any, with `admin`)."""
        return evaluations.comparison(request.state.principal, comparison_id)
