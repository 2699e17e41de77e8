"""Helper reports about one node: evidence, critique, qa and compare, built for a batch of nodes at once.

`evidence` and `compare` only read scores (compare embeds, no generation). `critique` and `qa` need the
helper model (role `helper`: the helper adapter, or the base model with the helper prompt). A critique's
sentences are judged in one batch of forward passes for every critique of the batch (`verify`); qa answers
go through one `generate_batched` call, cached by content address like summary nodes, so the same prompt
is never generated twice.
"""

from collections.abc import Sequence

from recursum.schemas.reports import CompareRequest, CritiqueRequest, EvidenceRequest, QaRequest, ReportBody
from recursum.service.engine.helpers.compare import compare_report
from recursum.service.engine.helpers.critique_report import critique_report, critique_verdicts
from recursum.service.engine.helpers.evidence_report import evidence_report
from recursum.service.engine.helpers.qa import qa_answers
from recursum.service.engine.helpers.tasks import ReportTask, summary_view
from recursum.service.engine.models.runtime import ModelRuntime
from recursum.service.engine.pipeline.evidence import EvidenceScorer
from recursum.service.engine.pipeline.node_cache import NodeCache
from recursum.service.engine.pipeline.results import GenerationStats

HELPER_BATCH = 8


def build_reports(runtime: ModelRuntime, scorer: EvidenceScorer, tasks: Sequence[ReportTask],
                  cache: NodeCache | None = None, stats: GenerationStats | None = None,
                  batch_size: int = HELPER_BATCH) -> list[ReportBody]:
    """Every task's report, in task order; all critiques share one batch of verdicts, all qa prompts one
    batched generation."""
    critiques = critique_verdicts(runtime, {position: task for position, task in enumerate(tasks)
                                         if isinstance(task.request, CritiqueRequest)})
    answers = qa_answers(runtime, scorer, {position: task for position, task in enumerate(tasks)
                                           if isinstance(task.request, QaRequest)}, cache, stats, batch_size)
    bodies: list[ReportBody] = []
    for position, task in enumerate(tasks):
        match task.request:
            case EvidenceRequest(summary=summary):
                bodies.append(evidence_report(summary_view(task.node, summary), task.children, task.text))
            case CompareRequest():
                bodies.append(compare_report(scorer, task))
            case CritiqueRequest():
                bodies.append(critique_report(task, critiques[position], scorer))
            case QaRequest():
                bodies.append(answers[position])
    return bodies
