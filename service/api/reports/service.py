"""What the report routes do, apart from HTTP (the model worker finishes pending ones: `jobs.reports`).

A report's id is a content address: sha256 of the job, the node, the request and, for generated kinds, the
helper model (base fingerprint and helper adapter). Asking again for the same report returns the stored one.
`evidence` and `compare` are built at once (no generation); `critique` and `qa` are stored pending and the
model worker generates them in batches between summary batches.
"""

import hashlib
import logging
import time

import msgspec

from recursum.schemas.reports import CritiqueRequest, QaRequest, ReportCreate, ReportKind, ReportRead
from recursum.schemas.tree import Node
from recursum.service.api.auth import Principal, visible_or_404
from recursum.service.api.problems import Conflict, NotFound, NotReady
from recursum.service.engine.helpers.tasks import check_request
from recursum.service.engine.interface import Engine
from recursum.service.jobs.views import report_task, reported_node
from recursum.service.store.records import JobRecord
from recursum.service.store.repository import Store

log = logging.getLogger("recursum.reports")

GENERATED = (CritiqueRequest, QaRequest)
RETRY_AFTER_SECONDS = 5


def report_id(job_id: str, node: Node, request: ReportCreate, engine: Engine) -> str:
    helper = ([engine.info.fingerprint, engine.info.adapters.get("helper")]
              if isinstance(request, GENERATED) else [])
    material = msgspec.json.encode([job_id, node.id, node.key, helper, request])
    return hashlib.sha256(material).hexdigest()


class ReportService:
    def __init__(self, store: Store) -> None:
        self.store = store

    def job(self, job_id: str, principal: Principal) -> JobRecord:
        """Evaluators may report on jobs offered to evaluation, admins on any, others on their own (else
        404)."""
        job = self.store.jobs.get_job(job_id)
        evaluators = "evaluate" if job is not None and job.evaluation else None
        return visible_or_404(job, lambda job: job.owner, principal, f"no summary job {job_id}",
                              also_scope=evaluators)

    def node(self, job: JobRecord, node_id: str) -> Node:
        node = reported_node(self.store, job.id, node_id)
        if node is None:
            raise NotFound(f"job {job.id} has no node {node_id}")
        return node

    def create(self, job_id: str, node_id: str, request: ReportCreate, principal: Principal,
               engine: Engine | None) -> tuple[ReportRead, int]:
        """The report and its HTTP status: 201 built now, 202 pending, 200 already stored."""
        job = self.job(job_id, principal)
        if job.status != "done":
            raise Conflict(f"job {job.id} is {job.status}; reports are about nodes of a finished tree")
        node = self.node(job, node_id)
        check_request(node, request)
        if engine is None:
            raise NotReady("the model is still loading", headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        kind: ReportKind = type(request).__struct_config__.tag
        report = ReportRead(id=report_id(job.id, node, request, engine), job_id=job.id, node_id=node.id,
                            kind=kind, status="pending", request=request, created=time.time())
        existing = self.store.reports.get_report(report.id)
        if existing is not None:
            if existing.status == "failed" and isinstance(request, GENERATED):
                return self.store.reports.retry_report(existing.id) or existing, 202
            return existing, 202 if existing.status == "pending" else 200
        if isinstance(request, GENERATED):
            return self._stored(report), 202
        (body,) = engine.report([report_task(self.store, job, node, report)])
        report = msgspec.structs.replace(report, status="done", body=body, finished=time.time())
        return self._stored(report), 201

    def _stored(self, report: ReportRead) -> ReportRead:
        try:
            stored, _ = self.store.reports.create_report(report)
        except KeyError:  # the job was deleted meanwhile
            raise NotFound(f"no summary job {report.job_id}") from None
        return stored

    def of_node(self, job_id: str, node_id: str, principal: Principal,
                kind: ReportKind | None) -> list[ReportRead]:
        job = self.job(job_id, principal)
        node = self.node(job, node_id)
        return self.store.reports.reports_of_node(job.id, node.id, kind)

    def read(self, job_id: str, node_id: str, report_id: str, principal: Principal) -> ReportRead:
        job = self.job(job_id, principal)
        report = self.store.reports.get_report(report_id)
        if report is None or report.job_id != job.id or report.node_id != node_id:
            raise NotFound(f"node {node_id} of job {job.id} has no report {report_id}")
        return report
