"""Comparison pairs: which two outputs of a node make an evaluation task, and the order they are shown in.

A pair is two outputs of one node:

- `summary`: the node's chosen summary beside one of its best-of-n candidates ("summary" vs
  "candidate:<i>"), one task per candidate, so every comparison asks whether the reward model's pick
  was right;
- `critique`: two done critique reports of the same summary of a node (other samples or adapters).

Which side is shown first is fixed per pair by its id (a hash), not by which one the reward model
chose, so position tells the evaluator nothing.
"""

import hashlib
from collections.abc import Iterator
from itertools import islice

from recursum.schemas.evaluations import EvaluationKind
from recursum.schemas.tree import Node, Sentence
from recursum.service.api.evaluations.critiques import critique_text
from recursum.service.engine.helpers.tasks import CHOSEN, summary_view
from recursum.service.store.evaluations import EvaluationPair, StoredReport
from recursum.service.store.repository import Store

SUMMARY = "summary"  # ref of the node's chosen summary
TaskFilter = tuple[int | None, str | None, EvaluationKind | None]  # height, role, kind


def pair_id(job_id: str, node_id: str, kind: str, refs: tuple[str, str]) -> str:
    """Content address of a pair, whichever order it is shown in."""
    return hashlib.sha256("\x1f".join((job_id, node_id, kind, *sorted(refs))).encode()).hexdigest()


def shown_order(pid: str, refs: tuple[str, str]) -> tuple[str, str]:
    """The order a pair is shown in: sorted refs, swapped when the id's last hex digit is odd."""
    a, b = sorted(refs)
    return (b, a) if int(pid[-1], 16) % 2 else (a, b)


def summary_index(ref: str) -> int:
    """CHOSEN for the chosen summary, i for "candidate:<i>" (the reports' `CandidateIndex`)."""
    return CHOSEN if ref == SUMMARY else int(ref.removeprefix("candidate:"))


def summary_ref(index: int) -> str:
    """The pair ref of one of a node's summaries (the inverse of `summary_index`)."""
    return SUMMARY if index == CHOSEN else f"candidate:{index}"


def summary_side(node: Node, ref: str) -> tuple[str, tuple[Sentence, ...], str, float | None]:
    """(text, sentences, policy, reward) of one summary of `node`."""
    index = summary_index(ref)
    view = summary_view(node, index)
    policy = "chosen" if index == CHOSEN else node.candidates[index].source
    return view.summary, view.sentences, policy, view.reward


def differ(first: str, second: str) -> bool:
    """Both non-blank and not the same text: what the training Comparison accepts."""
    return bool(first.strip()) and bool(second.strip()) and first.strip() != second.strip()


def matches(pair: EvaluationPair, task: TaskFilter) -> bool:
    height, role, kind = task
    return ((height is None or pair.height == height) and (kind is None or pair.kind == kind)
            and (role is None or (role == "chunk") == (pair.height == 0)))


RANK_WINDOW = 256  # eligible pairs, oldest first, among which the least certain is offered first


def eligible_pairs(store: Store, wanted: TaskFilter, excluded: set[str]) -> Iterator[EvaluationPair]:
    """Pairs the caller may judge, oldest job first."""
    return (pair for pair, _ in _with_margins(store, wanted, excluded))


def by_information(store: Store, wanted: TaskFilter, excluded: set[str],
                   window: int = RANK_WINDOW) -> list[EvaluationPair]:
    """Eligible pairs, the most informative first: among the oldest `window`, summary pairs the reward model
    was least sure about (the smallest reward difference between the two sides) first, then pairs without
    rewards (no reward model, critiques) oldest first."""
    scored = list(islice(_with_margins(store, wanted, excluded), window))
    order = sorted(range(len(scored)), key=lambda i: (scored[i][1] is None, scored[i][1] or 0.0, i))
    return [scored[i][0] for i in order]


def _with_margins(store: Store, wanted: TaskFilter,
                  excluded: set[str]) -> Iterator[tuple[EvaluationPair, float | None]]:
    height, role, kind = wanted
    if kind in (None, "summary"):
        yield from summary_pairs(store, height, role, excluded)
    if kind in (None, "critique"):
        yield from ((pair, None) for pair in critique_pairs(store, height, role, excluded))


def summary_pairs(store: Store, height: int | None, role: str | None,
                  excluded: set[str]) -> Iterator[tuple[EvaluationPair, float | None]]:
    """Summary pairs with |reward difference| of their sides (None where either has no reward)."""
    for found in store.evaluations.nodes_with_candidates(height, role):
        node = found.node
        for index, candidate in enumerate(node.candidates):
            refs = (SUMMARY, summary_ref(index))
            pid = pair_id(found.job_id, node.id, "summary", refs)
            if pid in excluded or not differ(node.summary, candidate.summary):
                continue
            first, second = shown_order(pid, refs)
            margin = (abs(node.reward - candidate.reward)
                      if node.reward is not None and candidate.reward is not None else None)
            yield EvaluationPair(id=pid, job_id=found.job_id, node_id=node.id, kind="summary",
                                 height=node.height, first=first, second=second,
                                 created=found.job_created), margin

def critique_pairs(store: Store, height: int | None, role: str | None,
                    excluded: set[str]) -> Iterator[EvaluationPair]:
    groups: dict[tuple[str, str, int], list[tuple[StoredReport, float]]] = {}
    for report, created in store.evaluations.finished_critiques(height, role):
        target = report.request.get("summary", -1)
        groups.setdefault((report.job_id, report.node_id, target), []).append((report, created))
    heights: dict[tuple[str, str], int] = {}
    for (job_id, node_id, _), reports in groups.items():
        for i, (one, created) in enumerate(reports):
            for other, _ in reports[i + 1:]:
                refs = (f"report:{one.id}", f"report:{other.id}")
                pid = pair_id(job_id, node_id, "critique", refs)
                if pid in excluded or not differ(critique_text(one), critique_text(other)):
                    continue
                if (job_id, node_id) not in heights:
                    node = store.nodes.get_job_node(job_id, node_id)
                    if node is None:
                        break
                    heights[job_id, node_id] = node.height
                first, second = shown_order(pid, refs)
                yield EvaluationPair(id=pid, job_id=job_id, node_id=node_id, kind="critique",
                                     height=heights[job_id, node_id], first=first, second=second,
                                     created=created)
