"""What the evaluation routes do apart from HTTP: lease comparison tasks, take comparisons, export them.

A task is a pair of outputs of one node:

- `summary`: the node's chosen summary beside one of its best-of-n candidates ("summary" vs
  "candidate:<i>"), one task per candidate, so every comparison asks whether the reward model's pick
  was right;
- `critique`: two done critique reports of the same summary of a node (other samples or adapters).

Which side is shown first is fixed per pair by its id (a hash), not by which one the reward model
chose, so position tells the evaluator nothing.
"""

import hashlib
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from recursum.schemas.evaluations import (
    ComparisonCreate,
    ComparisonRead,
    ComparisonRecord,
    EvaluationKind,
    EvaluationTask,
    FlaggedItem,
    ReportLink,
    TaskCandidate,
    TaskChild,
)
from recursum.schemas.reports import CompareRequest, CritiqueRequest, EvidenceRequest
from recursum.schemas.tree import Node
from recursum.service.api.auth import Principal
from recursum.service.api.problems import ApiError, Conflict, NotFound
from recursum.service.engine.helpers.critique import critique_parts
from recursum.service.engine.helpers.reports import node_material
from recursum.service.engine.pipeline.prompts import chunk_prompt, critique_input, merge_prompt
from recursum.service.store.evaluations import (
    EvaluationLease,
    EvaluationPair,
    LeaseConflict,
    StoredComparison,
    StoredReport,
)
from recursum.service.store.repository import Store

SUMMARY = "summary"  # ref of the node's chosen summary
EVALUATOR_PREFIX = "recursum:"  # exported evaluator names: "recursum:<API key name>"
TaskFilter = tuple[int | None, str | None, EvaluationKind | None]  # height, role, kind


class InvalidComparison(ApiError):
    """Raised when a comparison does not fit its task (a report of another node, an item it lacks)."""

    status, title = 422, "Comparison does not fit its task"


class InvalidQuery(ApiError):
    """Raised when a query parameter cannot be read (an unparseable `since`)."""

    status, title = 400, "Invalid query parameter"


def pair_id(job_id: str, node_id: str, kind: str, refs: tuple[str, str]) -> str:
    """Content address of a pair, whichever order it is shown in."""
    return hashlib.sha256("\x1f".join((job_id, node_id, kind, *sorted(refs))).encode()).hexdigest()


def shown_order(pid: str, refs: tuple[str, str]) -> tuple[str, str]:
    """The order a pair is shown in: sorted refs, swapped when the id's last hex digit is odd."""
    a, b = sorted(refs)
    return (b, a) if int(pid[-1], 16) % 2 else (a, b)


def summary_index(ref: str) -> int:
    """-1 for the chosen summary, i for "candidate:<i>" (the reports' `CandidateIndex`)."""
    return -1 if ref == SUMMARY else int(ref.removeprefix("candidate:"))


def _summary_side(node: Node, ref: str) -> tuple[str, Any, str, float | None]:
    """(text, sentences, policy, reward) of one summary of `node`."""
    index = summary_index(ref)
    if index < 0:
        return node.summary, node.sentences, "chosen", node.reward
    candidate = node.candidates[index]
    return candidate.summary, candidate.sentences, candidate.source, candidate.reward


def critique_lines(report: StoredReport) -> tuple[str, ...]:
    """A critique's items as lines in the forms the helper prompt asks for (`KIND <n>: why` for a summary
    sentence, `OMISSION: "quote" - why`), so an exported `helper:critique` comparison trains the helper on
    text its parser reads back."""
    return tuple(map(_critique_line, (report.body or {}).get("items", [])))


def _critique_line(item: dict) -> str:
    kind, why = item.get("kind", "unsupported").upper(), item.get("explanation", "")
    if item.get("sentence") is None:
        return f'{kind}: "{item.get("quote", "")}" - {why}'
    return f"{kind} {item['sentence'] + 1}: {why}"


def critique_text(report: StoredReport) -> str:
    lines = critique_lines(report)
    return "\n".join(lines) if lines else "No problems found."


def _critique_policy(report: StoredReport) -> str:
    sample = report.request.get("sample", 0)
    adapter = report.request.get("adapter")
    return f"adapter:{adapter}" if adapter else f"sample:{sample}"


def _differ(first: str, second: str) -> bool:
    """Both non-blank and not the same text: what the training Comparison accepts."""
    return bool(first.strip()) and bool(second.strip()) and first.strip() != second.strip()


def _parse_since(since: str | None) -> float | None:
    """Epoch seconds, or an ISO 8601 time (UTC unless it says otherwise)."""
    if since is None or not since.strip():
        return None
    try:
        return float(since)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(since.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidQuery(f"since={since!r} is neither epoch seconds nor an ISO 8601 time "
                          "(like 2026-11-24T10:00:00Z)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _matches(pair: EvaluationPair, task: TaskFilter) -> bool:
    height, role, kind = task
    return ((height is None or pair.height == height) and (kind is None or pair.kind == kind)
            and (role is None or (role == "chunk") == (pair.height == 0)))


class EvaluationService:
    def __init__(self, store: Store, lease_seconds: float) -> None:
        self.store = store
        self.lease_seconds = lease_seconds

    # Tasks

    def next_task(self, principal: Principal, wanted: TaskFilter) -> EvaluationTask | None:
        """The task the caller holds, or a new lease on the oldest pair they may judge; None when none."""
        now = time.time()
        held = self.store.active_lease(principal.name, now)
        if held is not None:
            lease, pair = held
            if _matches(pair, wanted):
                return self._task(lease, pair)
            self.store.release_lease(lease.id, now)  # one task at a time: asking for another gives it back
        excluded = self.store.pairs_compared_by(principal.name) | self.store.pairs_leased_to_others(
            principal.name, now)
        for pair in self._pairs(wanted, excluded):
            if not self._has_input(pair):
                continue
            lease = EvaluationLease(id=uuid.uuid4().hex, task_id=pair.id, evaluator=principal.name,
                                    leased=now, expires=now + self.lease_seconds)
            if self.store.lease_pair(pair, lease):
                return self._task(lease, pair)
        return None

    def _has_input(self, pair: EvaluationPair) -> bool:
        """Whether the pair's node has a non-blank prompt input (a training Comparison needs one)."""
        job, node = self.store.get_job(pair.job_id), self.store.get_job_node(pair.job_id, pair.node_id)
        if job is None or node is None:
            return False
        return bool(self._input(job.document_id, job.id, node).strip())

    def _pairs(self, wanted: TaskFilter, excluded: set[str]) -> Iterator[EvaluationPair]:
        height, role, kind = wanted
        if kind in (None, "summary"):
            yield from self._summary_pairs(height, role, excluded)
        if kind in (None, "critique"):
            yield from self._critique_pairs(height, role, excluded)

    def _summary_pairs(self, height: int | None, role: str | None,
                       excluded: set[str]) -> Iterator[EvaluationPair]:
        for found in self.store.nodes_with_candidates(height, role):
            node = found.node
            for index, candidate in enumerate(node.candidates):
                refs = (SUMMARY, f"candidate:{index}")
                pid = pair_id(found.job_id, node.id, "summary", refs)
                if pid in excluded or not _differ(node.summary, candidate.summary):
                    continue
                first, second = shown_order(pid, refs)
                yield EvaluationPair(id=pid, job_id=found.job_id, node_id=node.id, kind="summary",
                                     height=node.height, first=first, second=second,
                                     created=found.job_created)

    def _critique_pairs(self, height: int | None, role: str | None,
                        excluded: set[str]) -> Iterator[EvaluationPair]:
        groups: dict[tuple[str, str, int], list[tuple[StoredReport, float]]] = {}
        for report, created in self.store.finished_critiques(height, role):
            target = report.request.get("summary", -1)
            groups.setdefault((report.job_id, report.node_id, target), []).append((report, created))
        heights: dict[tuple[str, str], int] = {}
        for (job_id, node_id, _), reports in groups.items():
            for i, (one, created) in enumerate(reports):
                for other, _ in reports[i + 1:]:
                    refs = (f"report:{one.id}", f"report:{other.id}")
                    pid = pair_id(job_id, node_id, "critique", refs)
                    if pid in excluded or not _differ(critique_text(one), critique_text(other)):
                        continue
                    if (job_id, node_id) not in heights:
                        node = self.store.get_job_node(job_id, node_id)
                        if node is None:
                            break
                        heights[job_id, node_id] = node.height
                    first, second = shown_order(pid, refs)
                    yield EvaluationPair(id=pid, job_id=job_id, node_id=node_id, kind="critique",
                                         height=heights[job_id, node_id], first=first, second=second,
                                         created=created)

    def _leased(self, principal: Principal, lease_id: str) -> tuple[EvaluationLease, EvaluationPair]:
        """The caller's live lease, or the 404/409 that says why it is not."""
        found = self.store.get_lease(lease_id)
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
        node = self.store.get_job_node(pair.job_id, pair.node_id)
        if node is None:  # its job was deleted meanwhile
            raise NotFound(f"the node of task {pair.id} no longer exists")
        return node

    def _task(self, lease: EvaluationLease, pair: EvaluationPair) -> EvaluationTask:
        job = self.store.get_job(pair.job_id)
        node = self._node(pair)
        if job is None:
            raise NotFound(f"the job of task {pair.id} no longer exists")
        url = f"/v1/summaries/{pair.job_id}/nodes/{pair.node_id}/reports"  # the report routes; POST a request
        source, children = None, ()
        if node.height == 0:
            document = self.store.get_document(job.document_id)
            source = document.text[node.span.start : node.span.end] if document else None
        else:
            children = tuple(TaskChild(id=child.id, summary=child.summary)
                             for child in self._children(pair.job_id, node))
        if pair.kind == "summary":
            sides = tuple(self._summary_candidate(node, ref, url) for ref in (pair.first, pair.second))
            compare = CompareRequest(a=summary_index(pair.first), b=summary_index(pair.second))
            reports = (ReportLink(label="Compare A and B", url=url, request=compare),)
            critiqued = None
        else:
            by_id = {report.id: report for report in self.store.node_reports(pair.job_id, node.id)}
            sides = tuple(self._critique_candidate(by_id, ref) for ref in (pair.first, pair.second))
            target = by_id[pair.first.removeprefix("report:")].request.get("summary", -1)
            critiqued = _summary_side(node, SUMMARY if target < 0 else f"candidate:{target}")[0]
            reports = (ReportLink(label="Evidence", url=url, request=EvidenceRequest()),)
        return EvaluationTask(id=lease.id, kind=pair.kind, job_id=pair.job_id, node_id=node.id,
                              title=job.title, height=node.height, role=node.role,
                              leased_until=lease.expires, source=source, children=children,
                              summary=critiqued, candidates=sides, reports=reports)

    def _children(self, job_id: str, node: Node) -> list[Node]:
        children = [self.store.get_job_node(job_id, child) for child in node.children]
        return [child for child in children if child is not None]

    @staticmethod
    def _summary_candidate(node: Node, ref: str, url: str) -> TaskCandidate:
        text, sentences, policy, reward = _summary_side(node, ref)
        index = summary_index(ref)
        # Both sides get the same buttons, so none reveals which summary the reward model chose.
        links = [ReportLink(label="Evidence", url=url, request=EvidenceRequest(summary=index)),
                 ReportLink(label="Critique", url=url, request=CritiqueRequest(summary=index))]
        return TaskCandidate(ref=ref, policy=policy, text=text, sentences=sentences, reward=reward,
                             reports=tuple(links))

    @staticmethod
    def _critique_candidate(reports: dict[str, StoredReport], ref: str) -> TaskCandidate:
        report = reports[ref.removeprefix("report:")]
        return TaskCandidate(ref=ref, policy=_critique_policy(report), text=critique_text(report),
                             items=critique_lines(report))

    # Comparisons

    def submit(self, principal: Principal, answer: ComparisonCreate) -> ComparisonRead:
        """Check `answer` against its task and store it; refused answers change nothing."""
        already = self.store.comparison_for_lease(answer.task)
        if already is not None and already.evaluator == principal.name:
            raise Conflict(f"task {answer.task} was already answered (comparison {already.id}); "
                           "one answer per lease")
        lease, pair = self._leased(principal, answer.task)
        node = self._node(pair)
        job = self.store.get_job(pair.job_id)
        if job is None:
            raise NotFound(f"the job of task {pair.id} no longer exists")
        reports = {report.id: report for report in self.store.node_reports(pair.job_id, pair.node_id)}
        foreign = [report_id for report_id in answer.reports_opened if report_id not in reports]
        if foreign:
            raise InvalidComparison(f"reports_opened {foreign} are not reports of node {pair.node_id}")
        refs = (pair.first, pair.second)
        if pair.kind == "summary":
            sides = [_summary_side(node, ref) for ref in refs]
            texts = (sides[0][0], sides[1][0])
            policies = (sides[0][2], sides[1][2])
            items = [len(side[1]) for side in sides]
            task_input = self._input(job.document_id, pair.job_id, node)
        else:
            critiques = [reports[ref.removeprefix("report:")] for ref in refs]
            texts = (critique_text(critiques[0]), critique_text(critiques[1]))
            policies = (_critique_policy(critiques[0]), _critique_policy(critiques[1]))
            items = [len(critique_lines(critique)) for critique in critiques]
            task_input = self._critique_input(job.document_id, pair.job_id, node,
                                              critiques[0].request.get("summary", -1))
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
        )
        try:
            self.store.add_comparison(comparison)
        except LeaseConflict:  # lost a race: another answer, an expiry or a new lease came first
            self._leased(principal, answer.task)
            raise Conflict(f"task {answer.task} is no longer yours to answer") from None
        return comparison_read(comparison)

    def _input(self, document_id: str, job_id: str, node: Node) -> str:
        """The node's prompt input as training formats it: the chunk's text, or its children's summaries."""
        if node.height == 0:
            document = self.store.get_document(document_id)
            passage = document.text[node.span.start : node.span.end] if document else ""
            return chunk_prompt(passage).passage
        return merge_prompt([child.summary for child in self._children(job_id, node)]).passage

    def _critique_input(self, document_id: str, job_id: str, node: Node, target: int) -> str:
        """What the critique read (the node's material, as the report engine gives it to the helper) and
        the summary it critiqued, in the one-text form `prompts.task_prompt` reads back."""
        _, sentences, _, _ = _summary_side(node, SUMMARY if target < 0 else f"candidate:{target}")
        document = self.store.get_document(document_id)
        material = node_material(node, self._children(job_id, node), document.text if document else "")
        return critique_input(*critique_parts(sentences, material))

    def comparison(self, principal: Principal, comparison_id: str) -> ComparisonRead:
        """A comparison its evaluator submitted (any, for admin); others' are 404 like missing ones."""
        stored = self.store.get_comparison(comparison_id)
        if stored is None or (stored.evaluator != principal.name and not principal.is_admin):
            raise NotFound(f"no comparison {comparison_id}")
        return comparison_read(stored)

    # Export

    def export(self, since: str | None) -> Iterator[ComparisonRecord]:
        """Every comparison created at or after `since`, oldest first, as training records.
        A bad `since` raises here, before anything is streamed."""
        stored = self.store.comparisons_since(_parse_since(since))
        return (export_record(comparison) for comparison in stored)


def comparison_read(stored: StoredComparison) -> ComparisonRead:
    preference = int(stored.preference) if stored.preference in ("0", "1") else "tie"
    return ComparisonRead(
        id=stored.id, task=stored.lease_id, kind=stored.kind, job_id=stored.job_id, node_id=stored.node_id,
        height=stored.height, evaluator=stored.evaluator, preference=preference, confidence=stored.confidence,
        rationale=stored.rationale, reports_opened=stored.reports_opened,
        flagged=tuple(FlaggedItem(candidate=c, item=i) for c, i in stored.flagged), created=stored.created,
    )


def export_record(stored: StoredComparison) -> ComparisonRecord:
    """The training `Comparison` of a stored comparison: task chunk / merge by height, helper:critique."""
    task = "helper:critique" if stored.kind == "critique" else ("chunk" if stored.height == 0 else "merge")
    preferred = int(stored.preference) if stored.preference in ("0", "1") else "tie"
    return ComparisonRecord(
        task=task, height=stored.height, input=stored.input, group=stored.document_id, id=stored.id,
        candidates=stored.candidates, preferred=preferred, confidence=stored.confidence,
        evaluator=EVALUATOR_PREFIX + stored.evaluator, reports_seen=stored.reports_opened,
        policies=stored.policies, created=datetime.fromtimestamp(stored.created, UTC),
    )
