"""What the summary routes do, apart from HTTP: submit, read, cancel and delete jobs."""

import time
import uuid

from recursum.schemas.jobs import FINISHED, JobAccepted, NodeRead, SummaryCreate, TreeRead
from recursum.schemas.tree import ModelInfo
from recursum.service.api.auth import Principal, visible_or_404
from recursum.service.api.callbacks import check_callback_url
from recursum.service.api.problems import NotFound, QueueFull
from recursum.service.engine.pipeline.document import make_document
from recursum.service.engine.pipeline.tree import tree_config
from recursum.service.jobs.callback_targets import CallbackTargets
from recursum.service.store.records import JobRecord
from recursum.service.store.repository import Store

RETRY_AFTER_SECONDS = 30


class SummaryService:
    def __init__(self, store: Store, max_queue: int, max_bytes: int, callback_targets: CallbackTargets,
                 signers: frozenset[str]) -> None:
        self.store = store
        self.max_queue = max_queue
        self.max_bytes = max_bytes
        self.callback_targets = callback_targets
        self.signers = signers  # owners with a key to sign callbacks with

    def check_capacity(self) -> None:
        """Refuse with 429 while the queue is full: called before a body is read or normalized, so a full
        service spends nothing on it, and again at submit, where concurrent submissions meet."""
        if self.store.jobs.count_jobs(("queued", "running")) >= self.max_queue:
            raise QueueFull(f"{self.max_queue} jobs are already waiting; retry later",
                            headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    def submit(self, request: SummaryCreate, principal: Principal) -> JobRecord:
        """Validate, check the queue bound, then store the document and the job in that order."""
        document = make_document(request.text, request.title, self.max_bytes)
        config = tree_config(request.options)
        if request.callback_url is not None:
            check_callback_url(request.callback_url, self.callback_targets, principal.name in self.signers)
        self.check_capacity()
        job = JobRecord(id=uuid.uuid4().hex, owner=principal.name, document_id=document.id,
                        title=request.title, config=config, created=time.time(),
                        callback_url=request.callback_url)
        self.store.jobs.put_document(document)
        self.store.jobs.create_job(job)
        return job

    @staticmethod
    def accepted(job: JobRecord, url: str, reward_loaded: bool) -> JobAccepted:
        notes = []
        if job.config.best_of > 1 and not reward_loaded:
            notes.append(f"best_of={job.config.best_of}: no reward adapter is loaded, so each node keeps the "
                         "candidate whose sentences best pass the evidence screen (the greedy summary on a "
                         "tie); the others are stored as candidates for evaluators")
        return JobAccepted(id=job.id, url=url, status=job.status, notes=notes)

    def job(self, job_id: str, principal: Principal) -> JobRecord:
        """The job if the caller may see it; others' jobs are 404, not 403, so ids do not leak."""
        return visible_or_404(self.store.jobs.get_job(job_id), lambda job: job.owner, principal,
                              f"no summary job {job_id}")

    def tree(self, job: JobRecord, model: ModelInfo | None) -> TreeRead:
        nodes = self.store.nodes.job_nodes(job.id)
        heights: list[list[str]] = []
        for node in nodes:
            while len(heights) <= node.height:
                heights.append([])
            heights[node.height].append(node.id)
        return TreeRead(job_id=job.id, document_id=job.document_id, model=model, heights=heights,
                        nodes=nodes, root=job.root)

    def node(self, job: JobRecord, node_id: str, include_source: bool) -> NodeRead:
        node = self.store.nodes.get_job_node(job.id, node_id)
        if node is None:
            raise NotFound(f"job {job.id} has no node {node_id}")
        source = None
        if include_source and node.height == 0:
            document = self.store.jobs.get_document(job.document_id)
            source = document.text[node.span.start : node.span.end]
        return NodeRead(node=node, source=source)

    def delete(self, job: JobRecord) -> str:
        """Deletes a finished job ("deleted"), cancels a queued one no worker holds ("cancelled"), and
        asks the worker running a job to stop it ("cancelling")."""
        if job.status in FINISHED:
            self.store.jobs.delete_job(job.id)
            return "deleted"
        if self.store.jobs.cancel_unclaimed(job.id, time.time()):
            return "cancelled"
        try:
            self.store.jobs.update_job(job.id, cancel_requested=True)
        except KeyError:  # deleted by a concurrent request
            raise NotFound(f"no summary job {job.id}") from None
        return "cancelling"
