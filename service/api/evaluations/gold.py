"""Gold items: comparison tasks whose answer is known, mixed among the others at a set rate so each
evaluator's accuracy can be measured.

A gold item is a node's chosen summary beside the same summary with one sentence made false: a sentence
from another document's summary where the store has one (`foreign`), else the sentence negated. Its
evidence is scored like any summary's (the engine's compare report), and it is shown as one more candidate
of the node, so nothing in the task (refs, sentences, report buttons) tells it from a real pair. The known
answer is the original. Gold comparisons are recorded with whether they were right and are never exported
as training data.
"""

import hashlib
import random

from recursum.schemas.reports import CompareReport, CompareRequest, ReportRead
from recursum.schemas.tree import Node
from recursum.service.api.evaluations.pairs import SUMMARY, pair_id, shown_order, summary_ref
from recursum.service.engine.helpers.tasks import CHOSEN
from recursum.service.engine.interface import Engine
from recursum.service.engine.pipeline.planting import plant
from recursum.service.jobs.views import report_task, with_gold
from recursum.service.store.evaluations import EvaluationPair, GoldPlant
from recursum.service.store.records import JobRecord
from recursum.service.store.repository import Store

GOLD = "gold"  # the kind in a gold pair's content address (its shown kind stays "summary")


def gold_due(evaluator: str, answered: int, rate: float) -> bool:
    """Whether an evaluator's next task is a gold item: a hash of (evaluator, tasks answered) under `rate`,
    so gold items come at the set rate in places nobody can predict."""
    if rate <= 0:
        return False
    digest = hashlib.sha256(f"gold:{evaluator}:{answered}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def gold_plant(sentences: list[str], foreign: list[str], rng: random.Random) -> tuple[int, str, str] | None:
    """(index, false sentence, kind) for one of `sentences`: a foreign sentence where there is one, else a
    negation (`planting.plant`); None when neither applies."""
    candidates = [s for s in foreign if s.strip() and s not in sentences]
    kind = "foreign" if candidates else "negation"
    if (planted := plant(sentences, kind, [], candidates, rng)) is None:
        return None
    false, index = planted
    return index, false[index], kind


def gold_pair(store: Store, engine: Engine, job: JobRecord, node: Node, evaluator: str,
              answered: int) -> EvaluationPair | None:
    """The node's gold item (made now if it has none yet); None when its summary is too short to plant in."""
    existing = store.evaluations.gold_of_node(job.id, node.id)
    gold = existing or _new_gold(store, engine, job, node, random.Random(f"{evaluator}:{answered}"))
    if gold is None:
        return None
    refs = (SUMMARY, summary_ref(gold.candidate))
    pid = pair_id(job.id, node.id, GOLD, refs)
    first, second = shown_order(pid, refs)
    return EvaluationPair(id=pid, job_id=job.id, node_id=node.id, kind="summary", height=node.height,
                          first=first, second=second, created=job.created, gold=gold)


def _new_gold(store: Store, engine: Engine, job: JobRecord, node: Node,
              rng: random.Random) -> GoldPlant | None:
    sentences = [sentence.text for sentence in node.sentences]
    if len(sentences) < 2:
        return None
    planted = gold_plant(sentences, store.evaluations.other_sentences(job.document_id), rng)
    if planted is None:
        return None
    index, false, kind = planted
    summary = " ".join(sentences[:index] + [false] + sentences[index + 1 :])
    # Its evidence, scored against the node's inputs as any summary's is: a compare report's side b.
    scoring = ReportRead(id=GOLD, job_id=job.id, node_id=node.id, kind="compare", status="pending",
                         request=CompareRequest(a=CHOSEN, b=summary), created=0.0)
    (report,) = engine.report([report_task(store, job, node, scoring)])
    if not isinstance(report, CompareReport):
        return None
    return GoldPlant(summary=summary, sentences=report.b.sentences, planted=index, kind=kind,
                     candidate=len(node.candidates))


def gold_view(node: Node, pair: EvaluationPair) -> Node:
    """The node as a gold task shows it: its planted summary as one more candidate."""
    return with_gold(node, pair.gold) if pair.gold is not None else node


def gold_correct(pair: EvaluationPair, preference: str) -> bool | None:
    """Whether a gold item's answer preferred the original (a tie is wrong); None for other pairs."""
    if pair.gold is None:
        return None
    original = 0 if pair.first == SUMMARY else 1
    return preference == str(original)
