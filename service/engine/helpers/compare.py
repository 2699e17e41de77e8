"""The compare report: two summaries of a node side by side, their sentences aligned by meaning."""

from collections.abc import Sequence

import numpy as np

from recursum.schemas.reports import AlignedPair, CompareReport, CompareRequest, CompareSide, SummaryRef
from recursum.schemas.tree import Sentence
from recursum.service.engine.helpers.tasks import CHOSEN, ReportTask, summary_view
from recursum.service.engine.pipeline.evidence import EvidenceScorer, leaf_evidence, merge_evidence

ALIGN_SIMILARITY = 0.6  # cosine at which two sentences of compared summaries say the same thing


def _side(scorer: EvidenceScorer, task: ReportTask, ref: SummaryRef) -> CompareSide:
    node = task.node
    if isinstance(ref, str):
        if node.height == 0:
            sentences = leaf_evidence(scorer, ref, task.text, node.source_sentences, task.links,
                                      task.threshold)
        else:
            sentences = merge_evidence(scorer, ref, task.children, task.links, task.threshold)
        label, summary, reward = "request", ref, None
    else:
        view = summary_view(node, ref)
        label = "chosen" if ref == CHOSEN else f"candidate:{ref}"
        summary, sentences, reward = view.summary, view.sentences, view.reward
    mean = float(np.mean([s.support for s in sentences])) if sentences else 0.0
    return CompareSide(label=label, summary=summary, sentences=tuple(sentences), mean_support=round(mean, 4),
                       unsupported=sum(s.unsupported for s in sentences), reward=reward)


def align(scorer: EvidenceScorer, a: Sequence[Sentence], b: Sequence[Sentence]) -> tuple[AlignedPair, ...]:
    """One-to-one pairs of sentences that say the same thing (greedy on cosine), and the claims only one
    side makes, in a's reading order with b-only sentences after the pair they follow."""
    if not a or not b:
        return tuple([AlignedPair(a=i, b=None, similarity=0.0) for i in range(len(a))]
                     + [AlignedPair(a=None, b=j, similarity=0.0) for j in range(len(b))])
    vectors = scorer.embed([s.text for s in (*a, *b)])
    similarity = vectors[: len(a)] @ vectors[len(a) :].T  # (a sentences, b sentences)
    pairs: dict[int, tuple[int, float]] = {}
    taken: set[int] = set()
    for flat in np.argsort(-similarity, axis=None, kind="stable"):
        i, j = divmod(int(flat), len(b))
        if similarity[i, j] < ALIGN_SIMILARITY:
            break
        if i not in pairs and j not in taken:
            pairs[i] = (j, float(similarity[i, j]))
            taken.add(j)
    rows: list[tuple[tuple[int, int], AlignedPair]] = []
    for i in range(len(a)):
        j, score = pairs.get(i, (None, 0.0))
        rows.append(((i, -1), AlignedPair(a=i, b=j, similarity=round(score, 4))))
    for j in range(len(b)):
        if j not in taken:
            before = max((i for i, (paired, _) in pairs.items() if paired < j), default=-1)
            rows.append(((before, j), AlignedPair(a=None, b=j, similarity=0.0)))
    return tuple(pair for _, pair in sorted(rows, key=lambda row: row[0]))


def compare_report(scorer: EvidenceScorer, task: ReportTask) -> CompareReport:
    request = task.request
    assert isinstance(request, CompareRequest)
    a, b = _side(scorer, task, request.a), _side(scorer, task, request.b)
    return CompareReport(a=a, b=b, aligned=align(scorer, a.sentences, b.sentences))
