"""What the summary routes do, apart from HTTP: submit, read, cancel and delete jobs."""

import time
import uuid

from recursum.schemas.jobs import FINISHED, EstimateRead, JobAccepted, NodeRead, SummaryCreate, TreeRead
from recursum.schemas.tree import ModelInfo
from recursum.service.api.auth import Principal, visible_or_404
from recursum.service.api.callbacks import check_callback_url
from recursum.service.api.problems import JobTooLarge, NotFound, QueueFull, QuotaReached
from recursum.service.engine.errors import ConfigError
from recursum.service.engine.pipeline.document import make_document
from recursum.service.engine.pipeline.estimate import WorkEstimate, estimate_work
from recursum.service.engine.pipeline.tree import tree_config
from recursum.service.jobs.throughput import Throughput
from recursum.service.jobs.views import served_node
from recursum.service.settings import ServiceSettings
from recursum.service.store.jobs import OverLimit, SubmitLimits
from recursum.service.store.records import JobRecord
from recursum.service.store.repository import Store

RETRY_AFTER_SECONDS = 30


class SummaryService:
    def __init__(self, store: Store, settings: ServiceSettings) -> None:
        self.store = store
        self.settings = settings
        self.max_bytes = settings.max_body_bytes
        self.signers = frozenset(key.name for key in settings.api_keys)  # owners with a key to sign with
        self.limits = SubmitLimits(max_queue=settings.max_queue, max_jobs_per_key=settings.max_jobs_per_key,
                                   max_key_tokens=settings.max_key_tokens)

    def check_capacity(self, principal: Principal) -> None:
        """Refuse with 429 while the queue, or the caller's share of it, is full: called before a body is
        read or normalized, so a full service spends nothing on it, and again at submit, where concurrent
        submissions meet."""
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        limit = self.settings.max_queue
        if self.store.jobs.count_jobs(("queued", "running")) >= limit:
            raise QueueFull(f"{limit} jobs are already waiting; retry later", headers=retry)
        jobs, _ = self.store.jobs.owner_load(principal.name)
        if jobs >= (per_key := self.settings.max_jobs_per_key):
            raise QuotaReached(f"this API key has {jobs} jobs queued or running, its limit is {per_key}; "
                               "retry when one ends", headers=retry)

    def check_budget(self, estimate: WorkEstimate) -> None:
        """A job larger than the per-job budget is refused for good (422)."""
        if estimate.total_tokens > (per_job := self.settings.max_job_tokens):
            raise JobTooLarge(f"this job would cost {estimate.describe()}; the limit per job is "
                              f"{per_job:,} tokens. Raise chunk_tokens, lower best_of or split the document")

    def estimate(self, request: SummaryCreate, throughput: Throughput) -> EstimateRead:
        """What `request` would cost if submitted: the checks a submission gets, nothing stored."""
        document = make_document(request.text, request.title, self.max_bytes)
        config = tree_config(request.options)
        work = estimate_work(document.text, config, throughput.summary_length(config.summary_tokens))
        return work.read(throughput.seconds(work.prompt_tokens, work.generated_tokens), throughput.basis)

    def submit(self, request: SummaryCreate, principal: Principal) -> JobRecord:
        """Validate, check the bounds and budgets, then store the document and the job in that order."""
        document = make_document(request.text, request.title, self.max_bytes)
        config = tree_config(request.options)
        if request.options.question and request.options.evaluation:
            raise ConfigError("a question-focused job cannot be offered to evaluation yet: its comparisons "
                              "would be exported without the question they were judged against")
        if request.callback_url is not None:
            check_callback_url(request.callback_url, self.settings.callback_targets(),
                               principal.name in self.signers)
        self.check_capacity(principal)
        estimate = estimate_work(document.text, config)
        self.check_budget(estimate)
        job = JobRecord(id=uuid.uuid4().hex, owner=principal.name, document_id=document.id,
                        title=request.title, config=config, created=time.time(),
                        callback_url=request.callback_url, work_tokens=estimate.total_tokens,
                        estimated_nodes=sum(estimate.nodes),
                        evaluation=bool(request.options.evaluation))
        try:  # the bounds again, counted and kept inside the transaction that stores the job
            self.store.jobs.submit(document, job, self.limits)
        except OverLimit as over:
            refusal = QueueFull if over.kind == "queue" else QuotaReached
            cost = f"this job would cost {estimate.describe()}, and " if over.kind == "tokens" else ""
            raise refusal(cost + str(over), headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
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
        nodes = [served_node(node) for node in self.store.nodes.job_nodes(job.id)]
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
        return NodeRead(node=served_node(node), source=source)

    def delete(self, job: JobRecord) -> str:
        """Deletes a finished job ("deleted"), cancels a queued one no worker holds ("cancelled"), and
        asks the worker running a job to stop it ("cancelling")."""
        if job.status in FINISHED:
            self.store.jobs.delete_job(job.id, keep_comparisons=self.settings.keep_comparisons)
            return "deleted"
        if self.store.jobs.cancel_unclaimed(job.id, time.time()):
            return "cancelled"
        try:
            self.store.jobs.update_job(job.id, cancel_requested=True)
        except KeyError:  # deleted by a concurrent request
            raise NotFound(f"no summary job {job.id}") from None
        return "cancelling"
