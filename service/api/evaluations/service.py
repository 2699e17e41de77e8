"""What the evaluation routes do apart from HTTP: lease comparison tasks and take comparisons.

Pairs and their order are `pairs`; a critique's text is `critiques`; the prompt input a comparison trains on
is `inputs`; the export's records are `export`.
"""

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from recursum.schemas.evaluations import (
    ComparisonCreate,
    ComparisonRead,
    ComparisonRecord,
    EvaluationTask,
    ReportLink,
    TaskCandidate,
    TaskChild,
)
from recursum.schemas.reports import CompareRequest, CritiqueRequest, EvidenceRequest
from recursum.schemas.tree import Node
from recursum.service.api.auth import Principal, visible_or_404
from recursum.service.api.evaluations.critiques import critique_lines, critique_policy, critique_text
from recursum.service.api.evaluations.export import comparison_read, export_record, parse_since
from recursum.service.api.evaluations.gold import gold_correct, gold_due, gold_pair, gold_view
from recursum.service.api.evaluations.inputs import critique_task_input, node_input, stored_children
from recursum.service.api.evaluations.pairs import (
    TaskFilter,
    by_information,
    matches,
    summary_index,
    summary_ref,
    summary_side,
)
from recursum.service.api.problems import ApiError, Conflict, NotFound
from recursum.service.engine.helpers.tasks import CHOSEN
from recursum.service.engine.interface import Engine
from recursum.service.store.evaluations import (
    EvaluationLease,
    EvaluationPair,
    LeaseConflict,
    StoredComparison,
    StoredReport,
)
from recursum.service.store.repository import Store


class InvalidComparison(ApiError):
    """Raised when a comparison does not fit its task (a report of another node, an item it lacks)."""

    status, title = 422, "Comparison does not fit its task"


@dataclass
class ExportWindow:
    """One export: its records, how many there are, and the `seq` of the last (the next export's `after`)."""

    records: Iterator[ComparisonRecord]
    count: int
    through: int


@dataclass(frozen=True)
class EvaluationPolicy:
    """How tasks are handed out: lease length, distinct evaluators per pair, share of gold items."""

    lease_seconds: float = 900.0
    overlap: int = 1
    gold_rate: float = 0.0


class EvaluationService:
    def __init__(self, store: Store, policy: EvaluationPolicy,
                 engine: Callable[[], Engine | None] = lambda: None) -> None:
        self.store = store
        self.policy = policy
        self.engine = engine  # scores a gold item's evidence; None while the model loads (no gold then)

    # Tasks

    def next_task(self, principal: Principal, wanted: TaskFilter) -> EvaluationTask | None:
        """The task the caller holds, or a new lease on the most informative pair they may judge (a gold
        item now and then); None when none."""
        now = time.time()
        held = self.store.evaluations.active_lease(principal.name, now)
        if held is not None:
            lease, pair = held
            if matches(pair, wanted):
                return self._task(lease, pair)
            # One task at a time: asking for another gives it back.
            self.store.evaluations.release_lease(lease.id, now)
        evaluations = self.store.evaluations
        compared = evaluations.pairs_compared_by(principal.name)
        excluded = (compared | evaluations.pairs_leased_to_others(principal.name, now)
                    | evaluations.pairs_judged_enough(self.policy.overlap))
        pairs = by_information(self.store, wanted, excluded)
        answered = evaluations.answered_by(principal.name)
        if gold_due(principal.name, answered, self.policy.gold_rate):
            pairs = self._gold_pairs(principal.name, pairs, answered, compared) + pairs
        for pair in pairs:
            if not self._has_input(pair):  # checked lazily: it reads the node's inputs
                continue
            lease = EvaluationLease(id=uuid.uuid4().hex, task_id=pair.id, evaluator=principal.name,
                                    leased=now, expires=now + self.policy.lease_seconds)
            if self.store.evaluations.lease_pair(pair, lease):
                return self._task(lease, pair)
        return None

    def _gold_pairs(self, evaluator: str, pairs: list[EvaluationPair], answered: int,
                    compared: set[str]) -> list[EvaluationPair]:
        """A gold item on the node of the first summary pair whose node has not been a gold item for this
        evaluator (none when the model is loading)."""
        engine = self.engine()
        shown = self.store.evaluations.gold_nodes_shown(evaluator)
        for pair in pairs:
            if (engine is None or pair.kind != "summary" or (pair.job_id, pair.node_id) in shown
                    or not self._has_input(pair)):
                continue
            job = self.store.jobs.get_job(pair.job_id)
            node = self.store.nodes.get_job_node(pair.job_id, pair.node_id)
            if job is None or node is None:
                continue
            gold = gold_pair(self.store, engine, job, node, evaluator, answered)
            if gold is not None and gold.id not in compared:
                return [gold]
        return []

    def _has_input(self, pair: EvaluationPair) -> bool:
        """Whether the pair's node has a non-blank prompt input (a training Comparison needs one)."""
        job = self.store.jobs.get_job(pair.job_id)
        node = self.store.nodes.get_job_node(pair.job_id, pair.node_id)
        if job is None or node is None:
            return False
        return bool(node_input(self.store, job.document_id, job.id, node).strip())

    def _leased(self, principal: Principal, lease_id: str) -> tuple[EvaluationLease, EvaluationPair]:
        """The caller's live lease, or the 404/409 that says why it is not."""
        found = self.store.evaluations.get_lease(lease_id)
        if found is None or found[0].evaluator != principal.name:
            raise NotFound(f"no evaluation task {lease_id} was leased to you")
        lease, pair = found
        if lease.submitted is not None:
            raise Conflict(f"task {lease_id} was already answered; GET /v1/evaluations/tasks gives the next")
        if lease.expires < time.time():
            raise Conflict(f"your lease on task {lease_id} expired (or was given back for another task) at "
                           f"{datetime.fromtimestamp(lease.expires, UTC).isoformat(timespec='seconds')}; "
                           "ask GET /v1/evaluations/tasks for a new one")
        return lease, pair

    def _node(self, pair: EvaluationPair) -> Node:
        """The pair's node as its task shows it (a gold item's planted summary among its candidates)."""
        node = self.store.nodes.get_job_node(pair.job_id, pair.node_id)
        if node is None:  # its job was deleted meanwhile
            raise NotFound(f"the node of task {pair.id} no longer exists")
        return gold_view(node, pair)

    def _task(self, lease: EvaluationLease, pair: EvaluationPair) -> EvaluationTask:
        job = self.store.jobs.get_job(pair.job_id)
        node = self._node(pair)
        if job is None:
            raise NotFound(f"the job of task {pair.id} no longer exists")
        url = f"/v1/summaries/{pair.job_id}/nodes/{pair.node_id}/reports"  # the report routes; POST a request
        source, children = None, ()
        if node.height == 0:
            document = self.store.jobs.get_document(job.document_id)
            source = document.text[node.span.start : node.span.end] if document else None
        else:
            children = tuple(TaskChild(id=child.id, summary=child.summary)
                             for child in stored_children(self.store, pair.job_id, node))
        if pair.kind == "summary":
            sides = tuple(self._summary_candidate(node, ref, url) for ref in (pair.first, pair.second))
            compare = CompareRequest(a=summary_index(pair.first), b=summary_index(pair.second))
            reports = (ReportLink(label="Compare A and B", url=url, request=compare),)
            critiqued = None
        else:
            by_id = {report.id: report
                     for report in self.store.evaluations.node_reports(pair.job_id, node.id)}
            sides = tuple(self._critique_candidate(by_id, ref) for ref in (pair.first, pair.second))
            target = by_id[pair.first.removeprefix("report:")].request.get("summary", CHOSEN)
            critiqued = summary_side(node, summary_ref(target))[0]
            reports = (ReportLink(label="Evidence", url=url, request=EvidenceRequest()),)
        return EvaluationTask(id=lease.id, kind=pair.kind, job_id=pair.job_id, node_id=node.id,
                              title=job.title, height=node.height, role=node.role,
                              leased_until=lease.expires, source=source, children=children,
                              summary=critiqued, candidates=sides, reports=reports)

    @staticmethod
    def _summary_candidate(node: Node, ref: str, url: str) -> TaskCandidate:
        text, sentences, _, _ = summary_side(node, ref)
        index = summary_index(ref)
        # Both sides get the same buttons, so none reveals which summary the reward model chose.
        links = [ReportLink(label="Evidence", url=url, request=EvidenceRequest(summary=index)),
                 ReportLink(label="Critique", url=url, request=CritiqueRequest(summary=index))]
        return TaskCandidate(ref=ref, text=text, sentences=sentences, reports=tuple(links))

    @staticmethod
    def _critique_candidate(reports: dict[str, StoredReport], ref: str) -> TaskCandidate:
        report = reports[ref.removeprefix("report:")]
        return TaskCandidate(ref=ref, text=critique_text(report), items=critique_lines(report))

    # Comparisons

    def submit(self, principal: Principal, answer: ComparisonCreate) -> ComparisonRead:
        """Check `answer` against its task and store it; refused answers change nothing."""
        already = self.store.evaluations.comparison_for_lease(answer.task)
        if already is not None and already.evaluator == principal.name:
            raise Conflict(f"task {answer.task} was already answered (comparison {already.id}); "
                           "one answer per lease")
        lease, pair = self._leased(principal, answer.task)
        node = self._node(pair)
        job = self.store.jobs.get_job(pair.job_id)
        if job is None:
            raise NotFound(f"the job of task {pair.id} no longer exists")
        reports = {report.id: report
                   for report in self.store.evaluations.node_reports(pair.job_id, pair.node_id)}
        foreign = [report_id for report_id in answer.reports_opened if report_id not in reports]
        if foreign:
            raise InvalidComparison(f"reports_opened {foreign} are not reports of node {pair.node_id}")
        refs = (pair.first, pair.second)
        if pair.kind == "summary":
            sides = [summary_side(node, ref) for ref in refs]
            texts = (sides[0][0], sides[1][0])
            policies = (sides[0][2], sides[1][2])
            items = [len(side[1]) for side in sides]
            task_input = node_input(self.store, job.document_id, pair.job_id, node)
        else:
            critiques = [reports[ref.removeprefix("report:")] for ref in refs]
            texts = (critique_text(critiques[0]), critique_text(critiques[1]))
            policies = (critique_policy(critiques[0]), critique_policy(critiques[1]))
            items = [len(critique_lines(critique)) for critique in critiques]
            task_input = critique_task_input(self.store, job.document_id, pair.job_id, node,
                                             critiques[0].request.get("summary", CHOSEN))
        for flag in answer.flagged:
            if flag.item >= items[flag.candidate]:
                unit = "sentences" if pair.kind == "summary" else "items"
                raise InvalidComparison(f"flagged item {flag.item} of candidate {flag.candidate}: it has "
                                        f"{items[flag.candidate]} {unit}")
        comparison = StoredComparison(
            id=uuid.uuid4().hex, lease_id=lease.id, task_id=pair.id, job_id=pair.job_id, node_id=pair.node_id,
            document_id=job.document_id, kind=pair.kind, height=pair.height, input=task_input, refs=refs,
            candidates=texts, policies=policies, preference=str(answer.preference),
            confidence=answer.confidence, rationale=answer.rationale,
            reports_opened=tuple(dict.fromkeys(answer.reports_opened)),
            flagged=tuple(sorted({(flag.candidate, flag.item) for flag in answer.flagged})),
            evaluator=principal.name, created=time.time(),
            gold_correct=gold_correct(pair, str(answer.preference)),
        )
        try:
            self.store.evaluations.add_comparison(comparison)
        except LeaseConflict:  # lost a race: another answer, an expiry or a new lease came first
            self._leased(principal, answer.task)
            raise Conflict(f"task {answer.task} is no longer yours to answer") from None
        return comparison_read(comparison)

    def comparison(self, principal: Principal, comparison_id: str) -> ComparisonRead:
        """A comparison its evaluator submitted (any, for admin); others' are 404 like missing ones."""
        stored = visible_or_404(self.store.evaluations.get_comparison(comparison_id),
                                lambda comparison: comparison.evaluator, principal,
                                f"no comparison {comparison_id}")
        return comparison_read(stored)

    # Export

    def export(self, since: str | None, after: int) -> ExportWindow:
        """The comparisons stored after `after` (a `seq`) and created at or after `since`, in the order they
        were stored, as training records; how many there are and the last `seq` are fixed before anything
        is streamed (a bad `since` raises here), so a reader can tell a complete export from a cut one."""
        moment = parse_since(since)
        count, through = self.store.evaluations.export_window(moment, after)
        stored = self.store.evaluations.comparisons_in(moment, after, through)
        return ExportWindow(records=(export_record(comparison) for comparison in stored), count=count,
                            through=through)
