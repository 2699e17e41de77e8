"""Evaluations: comparison tasks for people, the comparisons they submit, and the export training reads."""

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from recursum.schemas.reports import ReportCreate
from recursum.schemas.tree import Role, Sentence

EvaluationKind = Literal["summary", "critique"]  # two summaries of a node, or two critiques of it
Preference = Literal[0, 1, "tie"]
Confidence = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Rationale = Annotated[str, msgspec.Meta(max_length=4000)]
SideIndex = Annotated[int, msgspec.Meta(ge=0, le=1)]  # 0: the first candidate shown, 1: the second
ItemIndex = Annotated[int, msgspec.Meta(ge=0, le=10_000)]
ReportIds = Annotated[tuple[Annotated[str, msgspec.Meta(min_length=1, max_length=128)], ...],
                      msgspec.Meta(max_length=64)]


class TaskChild(msgspec.Struct, frozen=True, kw_only=True):
    """A child of a merge node, in reading order: what the candidates summarize."""

    id: str
    summary: str


class ReportLink(msgspec.Struct, frozen=True, kw_only=True):
    """A helper report an evaluator may open: POST `request` to `url` (the task's report door)."""

    label: str
    url: str
    request: ReportCreate


class TaskCandidate(msgspec.Struct, frozen=True, kw_only=True):
    """One side of a comparison task.

    `ref` names it within the node: "summary" (the chosen one), "candidate:<i>" (a best-of-n
    alternative) or "report:<id>" (a critique). Summary sides carry their sentences with evidence and
    unsupported flags; critique sides carry their items. What wrote a side and its reward are not shown:
    they would bias the judgement (the comparison records them for training).
    """

    ref: str
    text: str
    sentences: tuple[Sentence, ...] = ()
    items: tuple[str, ...] = ()
    reports: tuple[ReportLink, ...] = ()


class EvaluationTask(msgspec.Struct, kw_only=True):
    """Two outputs for one node, leased to the caller until `leased_until` (epoch seconds).

    Submit the judgement with `POST /v1/comparisons` and `task` = `id` (the lease). A leaf shows its
    `source` text; a merge shows its `children`; critique tasks also show the `summary` critiqued.
    """

    id: str
    kind: EvaluationKind
    job_id: str
    node_id: str
    title: str
    height: int
    role: Role
    leased_until: float
    source: str | None = None
    children: tuple[TaskChild, ...] = ()
    summary: str | None = None
    candidates: tuple[TaskCandidate, TaskCandidate]
    reports: tuple[ReportLink, ...] = ()  # reports about both sides at once (compare)


class FlaggedItem(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An item the evaluator marked wrong: sentence `item` of a summary side, or item `item` of a critique."""

    candidate: SideIndex
    item: ItemIndex


class ComparisonCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An evaluator's judgement of a leased task. `preference` 0 / 1 is the first / second candidate.

    `reports_opened` are the ids of the helper reports the evaluator opened (the web page records them
    as they are opened); each must be a report about the task's node.
    """

    task: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    preference: Preference
    confidence: Confidence | None = None
    rationale: Rationale = ""
    reports_opened: ReportIds = ()
    flagged: Annotated[tuple[FlaggedItem, ...], msgspec.Meta(max_length=512)] = ()


class ComparisonRead(msgspec.Struct, kw_only=True):
    """A stored comparison, as its evaluator submitted it."""

    id: str
    task: str
    kind: EvaluationKind
    job_id: str
    node_id: str
    height: int
    evaluator: str
    preference: Preference
    confidence: float | None
    rationale: str
    reports_opened: tuple[str, ...]
    flagged: tuple[FlaggedItem, ...]
    created: float


class EvaluatorStats(msgspec.Struct, kw_only=True):
    """One evaluator's record. Agreement is with the majority of the other evaluators of the same pair
    (pairs without a strict majority among them are left out)."""

    evaluator: str
    judged: int  # comparisons, gold items aside
    gold_answered: int
    gold_accuracy: float | None  # share of gold items where the original was preferred
    overlapped: int  # judged pairs that others judged too
    majority_agreement: float | None
    median_seconds: float | None  # from lease to answer
    reports_opened: int  # helper reports opened, over all their comparisons
    judged_with_reports: int  # comparisons with at least one report opened


class EvaluationStats(msgspec.Struct, kw_only=True):
    """Every evaluator's record, and agreement overall: between evaluators of the same pair, and with the
    majority for judgements made with helper reports opened and without."""

    evaluators: list[EvaluatorStats]
    pairs_overlapped: int  # pairs judged by two evaluators or more
    inter_evaluator_agreement: float | None  # share of evaluator pairs on the same pair who agree
    agreement_with_reports: float | None
    agreement_without_reports: float | None


class ComparisonExport(msgspec.Struct, kw_only=True):
    """One answer of the export: its records and `through`, the `after` that continues from there."""

    records: list["ComparisonRecord"]
    through: int


class ComparisonRecord(msgspec.Struct, kw_only=True):
    """One line of `GET /v1/comparisons/export`: the training `Comparison` schema, field for field
    (training/datasets.py), so `recursum train` reads the export as it is."""

    task: str  # chunk | merge | helper:critique
    height: int | None
    input: str
    group: str
    id: str
    candidates: tuple[str, str]
    preferred: Preference
    confidence: float | None = None
    evaluator: str
    reports_seen: tuple[str, ...] = ()
    policies: tuple[str, str] | None = None
    created: datetime
