"""How stored records read to their callers: a job's wire state, and a report's task for the engine."""

import time
from collections.abc import Sequence

import msgspec

from recursum.schemas.events import HeightStarted, JobEvent, NodeSummary
from recursum.schemas.jobs import HeightProgress, JobRead
from recursum.schemas.reports import ReportRead
from recursum.schemas.tree import Candidate, Node
from recursum.service.engine.helpers.tasks import ReportTask
from recursum.service.store.evaluations import GoldPlant
from recursum.service.store.records import JobRecord
from recursum.service.store.repository import Store


def served_node(node: Node) -> Node:
    """A node as the service shows it, without its `cached` flag or its generations' content addresses:
    the generation cache is shared by every tenant, so either would tell a submitter that someone else had
    summarized the same text."""
    return msgspec.structs.replace(node, cached=False, generations=())


def served_event(event: JobEvent, job: JobRecord, progress: Sequence[HeightProgress]) -> JobEvent:
    """An event as the service streams it: a height's count of cached nodes withheld, as in `served_node`;
    a finished node with the job's ETA."""
    match event:
        case HeightStarted():
            return msgspec.structs.replace(event, cached=0)
        case NodeSummary():
            return msgspec.structs.replace(event, eta_seconds=eta_seconds(job, progress, time.time()))
    return event


def eta_seconds(job: JobRecord, progress: Sequence[HeightProgress], now: float) -> float | None:
    """The time a running job has left at its pace so far: seconds per finished node times the nodes the
    estimate still counts. None before its first node or once the estimate is used up (the estimate
    counts nodes at their worst case, so a tree often ends sooner)."""
    done = sum(height.done for height in progress)
    if job.status != "running" or job.started is None or done == 0 or job.estimated_nodes <= done:
        return None
    return (now - job.started) / done * (job.estimated_nodes - done)


def job_read(store: Store, job: JobRecord) -> JobRead:
    root = store.nodes.get_job_node(job.id, job.root) if job.root else None
    callbacks = store.callbacks.attempts(job.id) if job.callback_url else []
    return JobRead(id=job.id, title=job.title, status=job.status, created=job.created,
                   started=job.started, finished=job.finished, progress=job.progress,
                   root=job.root, summary=root.summary if root else None, error=job.error,
                   callbacks=callbacks, eta_seconds=eta_seconds(job, job.progress, time.time()),
                   bundle=job.bundle)


def reported_node(store: Store, job_id: str, node_id: str) -> Node | None:
    """A stored node as reports see it: with its gold item's planted summary as one more candidate, so an
    evaluator's evidence and critique of that side work like any other's (the tree never shows it)."""
    node = store.nodes.get_job_node(job_id, node_id)
    gold = store.evaluations.gold_of_node(job_id, node_id) if node is not None else None
    return node if gold is None else with_gold(node, gold)


def with_gold(node: Node, gold: GoldPlant) -> Node:
    """`node` with the planted summary as its candidate `gold.candidate`."""
    planted = Candidate(summary=gold.summary, sentences=gold.sentences, source=f"gold:{gold.kind}")
    return msgspec.structs.replace(node, candidates=node.candidates[: gold.candidate] + (planted,))


def report_task(store: Store, job: JobRecord, node: Node, report: ReportRead) -> ReportTask:
    """What the engine needs to build `report`: the node, its stored children and the document text."""
    children = tuple(child for child_id in node.children
                     if (child := store.nodes.get_job_node(job.id, child_id)) is not None)
    document = store.jobs.get_document(job.document_id)
    return ReportTask(key=report.id, request=report.request, node=node, children=children,
                      text=document.text, threshold=job.config.evidence_threshold,
                      links=job.config.evidence_links)
