"""The store's evaluation tables: comparison tasks, their leases to evaluators, and comparisons.

A task is a pair
of outputs for one node, kept as one row however often it is offered; leasing it is one conditional
UPDATE, so two evaluators never hold the same pair at once, and submitting is another, so one lease
gets one answer.
"""

from collections.abc import Iterator
from typing import Any

import msgspec
import sqlalchemy as sa

from recursum.schemas.tree import Node, Sentence
from recursum.service.store.database import Database
from recursum.service.store.tables import (
    ComparisonRow,
    EvaluationLeaseRow,
    EvaluationTaskRow,
    JobNodeRow,
    JobRow,
    ReportRow,
    row_struct,
)

_PAGE = 200  # rows read per query while looking for the next eligible pair, or exporting
_SEQ_ATTEMPTS = 3  # concurrent submissions on PostgreSQL may draw the same next number; the loser retries


class GoldPlant(msgspec.Struct, frozen=True, kw_only=True):
    """A gold item's planted side: the node's chosen summary with sentence `planted` made false (`kind`),
    with its evidence, shown as the node's candidate `candidate` (one past its real ones)."""

    summary: str
    sentences: tuple[Sentence, ...]
    planted: int
    kind: str
    candidate: int


class EvaluationPair(msgspec.Struct, frozen=True, kw_only=True):
    """Two outputs of one node, by ref ("summary", "candidate:<i>", "report:<id>"), in the order shown."""

    id: str
    job_id: str
    node_id: str
    kind: str
    height: int
    first: str
    second: str
    created: float
    gold: GoldPlant | None = None  # a gold item: the known answer is the node's chosen summary


class EvaluationLease(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    task_id: str
    evaluator: str
    leased: float
    expires: float
    submitted: float | None = None


class StoredComparison(msgspec.Struct, kw_only=True):
    """A comparison with copies of what was compared (it outlives the job it came from)."""

    id: str
    lease_id: str
    task_id: str
    job_id: str
    node_id: str
    document_id: str
    kind: str
    height: int
    input: str
    refs: tuple[str, str]
    candidates: tuple[str, str]
    policies: tuple[str, str]
    preference: str  # "0" | "1" | "tie"
    confidence: float | None
    rationale: str
    reports_opened: tuple[str, ...]
    flagged: tuple[tuple[int, int], ...]  # (candidate, item)
    evaluator: str
    created: float
    seq: int = 0  # given by the store: the order comparisons were stored in
    gold_correct: bool | None = None  # a gold item's: whether the original was preferred


class Judgement(msgspec.Struct, frozen=True, kw_only=True):
    """One comparison as evaluator statistics read it."""

    task_id: str
    evaluator: str
    preference: str  # "0" | "1" | "tie"
    gold_correct: bool | None
    reports_opened: int
    seconds: float  # from the lease to the answer


class StoredReport(msgspec.Struct, frozen=True, kw_only=True):
    """A reports-table row as the evaluation code reads it (the report's body stays plain JSON)."""

    id: str
    job_id: str
    node_id: str
    kind: str
    status: str
    request: dict[str, Any]
    body: dict[str, Any] | None
    error: str | None
    created: float
    finished: float | None


class NodeWithJob(msgspec.Struct, frozen=True, kw_only=True):
    job_id: str
    job_created: float
    document_id: str
    title: str
    node: Node


class LeaseConflict(Exception):
    """Raised when a comparison is submitted for a lease that is no longer the caller's to answer."""


def _window(since: float | None, after: int, through: int) -> list[Any]:
    """An export's comparisons: gold items are checks of evaluators, never training data."""
    conditions = [ComparisonRow.seq > after, ComparisonRow.seq <= through,
                  ComparisonRow.gold_correct.is_(None)]
    return conditions if since is None else [*conditions, ComparisonRow.created >= since]


def _height_filter(column: Any, height: int | None, role: str | None) -> list[Any]:
    """Role follows height: chunks are height 0, merges above it."""
    conditions = []
    if height is not None:
        conditions.append(column == height)
    if role == "chunk":
        conditions.append(column == 0)
    elif role == "merge":
        conditions.append(column >= 1)
    return conditions


class EvaluationRepository:
    """Comparison tasks, their leases and comparisons."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # Where pairs come from

    def nodes_with_candidates(self, height: int | None = None,
                              role: str | None = None) -> Iterator[NodeWithJob]:
        """Nodes that kept best-of-n candidates, of jobs offered to evaluation, oldest job first, then by
        height and reading order."""
        has_candidates = sa.func.json_array_length(JobNodeRow.node["candidates"]) >= 1
        query = (
            sa.select(JobRow.id, JobRow.created, JobRow.document_id, JobRow.title, JobNodeRow.node)
            .join(JobRow, JobRow.id == JobNodeRow.job_id)
            .where(has_candidates, JobRow.evaluation, *_height_filter(JobNodeRow.height, height, role))
            .order_by(JobRow.created, JobRow.id, JobNodeRow.height, JobNodeRow.index)
        )
        offset = 0
        while True:
            with self.db.session() as session:
                rows = session.execute(query.offset(offset).limit(_PAGE)).all()
            for job_id, created, document_id, title, node in rows:
                yield NodeWithJob(job_id=job_id, job_created=created, document_id=document_id, title=title,
                                  node=msgspec.convert(node, Node))
            if len(rows) < _PAGE:
                return
            offset += _PAGE

    def finished_critiques(self, height: int | None = None,
                           role: str | None = None) -> list[tuple[StoredReport, float]]:
        """Done critique reports of nodes with another one, of jobs offered to evaluation, with their job's
        creation time, oldest first."""
        others = sa.select(ReportRow.job_id, ReportRow.node_id).where(
            ReportRow.kind == "critique", ReportRow.status == "done"
        ).group_by(ReportRow.job_id, ReportRow.node_id).having(sa.func.count() >= 2).subquery()
        query = (
            sa.select(ReportRow, JobRow.created)
            .join(others, sa.and_(others.c.job_id == ReportRow.job_id, others.c.node_id == ReportRow.node_id))
            .join(JobRow, JobRow.id == ReportRow.job_id)
            .join(JobNodeRow, sa.and_(JobNodeRow.job_id == ReportRow.job_id,
                                      JobNodeRow.node_id == ReportRow.node_id))
            .where(ReportRow.kind == "critique", ReportRow.status == "done", JobRow.evaluation,
                   *_height_filter(JobNodeRow.height, height, role))
            .order_by(JobRow.created, ReportRow.job_id, JobNodeRow.height, JobNodeRow.index,
                      ReportRow.created, ReportRow.id)
        )
        with self.db.session() as session:
            return [(row_struct(row, StoredReport), created) for row, created in session.execute(query)]

    def node_reports(self, job_id: str, node_id: str) -> list[StoredReport]:
        """Every report about one node, oldest first."""
        query = (sa.select(ReportRow).where(ReportRow.job_id == job_id, ReportRow.node_id == node_id)
                 .order_by(ReportRow.created, ReportRow.id))
        with self.db.session() as session:
            return [row_struct(row, StoredReport) for row in session.scalars(query)]

    # Leases

    def active_lease(self, evaluator: str, now: float) -> tuple[EvaluationLease, EvaluationPair] | None:
        """The unexpired, unanswered lease `evaluator` holds, if any."""
        query = (
            sa.select(EvaluationLeaseRow, EvaluationTaskRow)
            .join(EvaluationTaskRow, EvaluationTaskRow.lease_id == EvaluationLeaseRow.id)
            .where(EvaluationLeaseRow.evaluator == evaluator, EvaluationLeaseRow.submitted.is_(None),
                   EvaluationLeaseRow.expires >= now)
            .order_by(EvaluationLeaseRow.leased.desc())
            .limit(1)
        )
        with self.db.session() as session:
            found = session.execute(query).first()
            if found is None:
                return None
            return row_struct(found[0], EvaluationLease), row_struct(found[1], EvaluationPair)

    def get_lease(self, lease_id: str) -> tuple[EvaluationLease, EvaluationPair] | None:
        with self.db.session() as session:
            lease = session.get(EvaluationLeaseRow, lease_id)
            if lease is None:
                return None
            pair = session.get_one(EvaluationTaskRow, lease.task_id)
            return row_struct(lease, EvaluationLease), row_struct(pair, EvaluationPair)

    def backlog(self, now: float) -> tuple[int, int]:
        """(tasks offered and never answered that no one holds now, leases that expired unanswered): the
        evaluators' queue for metrics, on every replica."""
        answered = sa.select(ComparisonRow.task_id)
        waiting = sa.select(sa.func.count()).select_from(EvaluationTaskRow).where(
            EvaluationTaskRow.id.not_in(answered),
            sa.or_(EvaluationTaskRow.lease_owner.is_(None), EvaluationTaskRow.lease_expires < now))
        expired = sa.select(sa.func.count()).select_from(EvaluationLeaseRow).where(
            EvaluationLeaseRow.submitted.is_(None), EvaluationLeaseRow.expires < now)
        with self.db.session() as session:
            return session.scalar(waiting) or 0, session.scalar(expired) or 0

    def pairs_compared_by(self, evaluator: str) -> set[str]:
        query = sa.select(ComparisonRow.task_id).where(ComparisonRow.evaluator == evaluator)
        with self.db.session() as session:
            return set(session.scalars(query))

    def pairs_judged_enough(self, overlap: int) -> set[str]:
        """Pairs that `overlap` distinct evaluators have judged already (gold items aside)."""
        query = (sa.select(ComparisonRow.task_id).where(ComparisonRow.gold_correct.is_(None))
                 .group_by(ComparisonRow.task_id)
                 .having(sa.func.count(sa.distinct(ComparisonRow.evaluator)) >= overlap))
        with self.db.session() as session:
            return set(session.scalars(query))

    def answered_by(self, evaluator: str) -> int:
        """Comparisons `evaluator` submitted, gold items included."""
        query = (sa.select(sa.func.count()).select_from(ComparisonRow)
                 .where(ComparisonRow.evaluator == evaluator))
        with self.db.session() as session:
            return session.scalar(query) or 0

    def gold_of_node(self, job_id: str, node_id: str) -> GoldPlant | None:
        """The node's gold item, if one was made (one per node, so its candidate index is unambiguous)."""
        query = (sa.select(EvaluationTaskRow.gold)
                 .where(EvaluationTaskRow.job_id == job_id, EvaluationTaskRow.node_id == node_id,
                        EvaluationTaskRow.gold.is_not(None)).limit(1))
        with self.db.session() as session:
            found = session.scalars(query).first()
            return None if found is None else msgspec.convert(found, GoldPlant)

    def gold_nodes_shown(self, evaluator: str) -> set[tuple[str, str]]:
        """(job, node) of the gold items leased to `evaluator` so far: none is shown to them twice."""
        query = (sa.select(EvaluationTaskRow.job_id, EvaluationTaskRow.node_id)
                 .join(EvaluationLeaseRow, EvaluationLeaseRow.task_id == EvaluationTaskRow.id)
                 .where(EvaluationLeaseRow.evaluator == evaluator, EvaluationTaskRow.gold.is_not(None)))
        with self.db.session() as session:
            return {(job_id, node_id) for job_id, node_id in session.execute(query)}

    def other_sentences(self, document_id: str, nodes: int = 20) -> list[str]:
        """Summary sentences of nodes of other documents (the newest jobs'): where a foreign sentence comes
        from."""
        query = (sa.select(JobNodeRow.node).join(JobRow, JobRow.id == JobNodeRow.job_id)
                 .where(JobRow.document_id != document_id)
                 .order_by(JobRow.created.desc(), JobNodeRow.node_id).limit(nodes))
        with self.db.session() as session:
            return [sentence["text"] for node in session.scalars(query)
                    for sentence in node.get("sentences", ()) if sentence.get("text")]

    def judgements(self) -> list[Judgement]:
        """Every comparison with its lease time, oldest first: what evaluator statistics are computed from."""
        query = (sa.select(ComparisonRow.task_id, ComparisonRow.evaluator, ComparisonRow.preference,
                           ComparisonRow.gold_correct, ComparisonRow.reports_opened, ComparisonRow.created,
                           EvaluationLeaseRow.leased)
                 .join(EvaluationLeaseRow, EvaluationLeaseRow.id == ComparisonRow.lease_id)
                 .order_by(ComparisonRow.seq))
        with self.db.session() as session:
            return [Judgement(task_id=task_id, evaluator=evaluator, preference=preference,
                              gold_correct=gold_correct, reports_opened=len(opened or ()),
                              seconds=max(0.0, created - leased))
                    for task_id, evaluator, preference, gold_correct, opened, created, leased
                    in session.execute(query)]

    def pairs_leased_to_others(self, evaluator: str, now: float) -> set[str]:
        query = sa.select(EvaluationTaskRow.id).where(
            EvaluationTaskRow.lease_owner.is_not(None), EvaluationTaskRow.lease_owner != evaluator,
            EvaluationTaskRow.lease_expires >= now,
        )
        with self.db.session() as session:
            return set(session.scalars(query))

    def lease_pair(self, pair: EvaluationPair, lease: EvaluationLease) -> bool:
        """Lease `pair` to `lease.evaluator` unless someone else holds it; False when someone does."""
        free = sa.and_(
            EvaluationTaskRow.id == pair.id,
            sa.or_(EvaluationTaskRow.lease_owner.is_(None), EvaluationTaskRow.lease_owner == lease.evaluator,
                   EvaluationTaskRow.lease_expires < lease.leased),
        )
        with self.db.session.begin() as session:
            session.execute(self.db.insert_unless_exists(EvaluationTaskRow, msgspec.to_builtins(pair)))
            taken = session.execute(sa.update(EvaluationTaskRow).where(free).values(
                lease_id=lease.id, lease_owner=lease.evaluator, lease_expires=lease.expires))
            if taken.rowcount == 0:
                return False
            session.add(EvaluationLeaseRow(**msgspec.to_builtins(lease)))
            return True

    def release_lease(self, lease_id: str, now: float) -> None:
        """Give a lease back unanswered (its evaluator asked for a different task): it expires now."""
        with self.db.session.begin() as session:
            session.execute(sa.update(EvaluationTaskRow).where(EvaluationTaskRow.lease_id == lease_id)
                            .values(lease_id=None, lease_owner=None, lease_expires=None))
            session.execute(sa.update(EvaluationLeaseRow).where(EvaluationLeaseRow.id == lease_id)
                            .values(expires=now))

    # Comparisons

    def add_comparison(self, comparison: StoredComparison) -> None:
        """Store the answer to a lease the evaluator still holds, and free the pair for others.

        Raises `LeaseConflict` (and changes nothing) when the lease is answered, expired or not theirs.
        """
        held = sa.and_(EvaluationTaskRow.id == comparison.task_id,
                       EvaluationTaskRow.lease_id == comparison.lease_id,
                       EvaluationTaskRow.lease_owner == comparison.evaluator,
                       EvaluationTaskRow.lease_expires >= comparison.created)
        for attempt in range(_SEQ_ATTEMPTS):
            try:
                with self.db.session.begin() as session:
                    released = session.execute(sa.update(EvaluationTaskRow).where(held)
                                               .values(lease_id=None, lease_owner=None, lease_expires=None))
                    if released.rowcount == 0:
                        raise LeaseConflict(comparison.lease_id)
                    session.execute(sa.update(EvaluationLeaseRow)
                                    .where(EvaluationLeaseRow.id == comparison.lease_id)
                                    .values(submitted=comparison.created))
                    seq = session.scalar(sa.select(sa.func.coalesce(sa.func.max(ComparisonRow.seq), 0) + 1))
                    session.add(ComparisonRow(**msgspec.to_builtins(comparison) | {"seq": seq}))
                return
            except sa.exc.IntegrityError:  # a concurrent submission took this number first: take the next
                if attempt + 1 == _SEQ_ATTEMPTS:
                    raise

    def get_comparison(self, comparison_id: str) -> StoredComparison | None:
        with self.db.session() as session:
            row = session.get(ComparisonRow, comparison_id)
            return None if row is None else row_struct(row, StoredComparison)

    def comparison_for_lease(self, lease_id: str) -> StoredComparison | None:
        with self.db.session() as session:
            row = session.scalars(sa.select(ComparisonRow).where(ComparisonRow.lease_id == lease_id)).first()
            return None if row is None else row_struct(row, StoredComparison)

    def export_window(self, since: float | None, after: int) -> tuple[int, int]:
        """(how many comparisons an export holds, the last `seq` it reaches): the ones stored after
        `after` and created at or after `since`, up to the newest stored now."""
        with self.db.session() as session:
            last = session.scalar(sa.select(sa.func.max(ComparisonRow.seq))) or 0
            count = session.scalar(sa.select(sa.func.count()).select_from(ComparisonRow)
                                   .where(*_window(since, after, last))) or 0
            return count, last

    def comparisons_in(self, since: float | None, after: int, through: int) -> Iterator[StoredComparison]:
        """The comparisons of an export window, in the order they were stored, read a page at a time."""
        query = sa.select(ComparisonRow).order_by(ComparisonRow.seq).limit(_PAGE)
        while True:
            page = query.where(*_window(since, after, through))
            with self.db.session() as session:
                rows = [row_struct(row, StoredComparison) for row in session.scalars(page)]
            yield from rows
            if len(rows) < _PAGE:
                return
            after = rows[-1].seq

