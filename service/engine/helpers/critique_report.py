"""The critique report: the helper's per-sentence verdicts and the evidence's own items, combined."""

from collections.abc import Sequence

from recursum.schemas.reports import CritiqueReport, CritiqueRequest
from recursum.service.engine.helpers.critique import combine, evidence_items
from recursum.service.engine.helpers.tasks import ReportTask, critiqued_parts, node_material, summary_view
from recursum.service.engine.helpers.verify import choose, summary_distributions, verdict_items
from recursum.service.engine.models.runtime import ModelRuntime
from recursum.service.engine.pipeline.evidence import EvidenceScorer


def critique_verdicts(runtime: ModelRuntime, tasks: dict[int, ReportTask]) -> dict[int, list[str]]:
    """Each critique task's helper verdicts, one per summary sentence judged beside its closest input
    sentence; all of them in one batch (`verify.summary_distributions`)."""
    summaries, samples = [], []
    for task in tasks.values():
        assert isinstance(task.request, CritiqueRequest)
        _, sentences, closest = critiqued_parts(task.node, task.request.summary, task.children, task.text)
        summaries.append((sentences, closest))
        samples.append(task.request.sample)
    distributions = summary_distributions(runtime, summaries)
    return {position: choose(d, sample, runtime.verify_calibration)
            for position, d, sample in zip(tasks, distributions, samples, strict=True)}


def critique_report(task: ReportTask, verdicts: Sequence[str],
                    scorer: EvidenceScorer | None = None) -> CritiqueReport:
    """The helper's items (its verdicts other than SUPPORTED) and the evidence's own, most severe first."""
    assert isinstance(task.request, CritiqueRequest)
    node = summary_view(task.node, task.request.summary)
    material = node_material(node, task.children, task.text)
    return CritiqueReport(items=combine(evidence_items(node, material, task.threshold, scorer),
                                        verdict_items(verdicts, node)))
