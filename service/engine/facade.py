"""The engine's one narrow interface: what the HTTP layer and the job worker may call."""

import time
from collections.abc import Callable, Sequence

from recursum.schemas.reports import ReportBody
from recursum.schemas.tree import ModelInfo
from recursum.service.engine.helpers.reports import ReportTask, build_reports
from recursum.service.engine.models.runtime import ModelRuntime, ModelSpec, load_runtime
from recursum.service.engine.pipeline.document import Document
from recursum.service.engine.pipeline.events import ProgressEvent
from recursum.service.engine.pipeline.evidence import EvidenceScorer
from recursum.service.engine.pipeline.generate import GenerationStats
from recursum.service.engine.pipeline.node_cache import NodeCache
from recursum.service.engine.pipeline.recursion import RunStats, Summarizer, TreeBuild, run_round
from recursum.service.engine.pipeline.tree import TreeConfig


class Engine:
    """One loaded model and evidence scorer, shared by every job of the process."""

    def __init__(self, runtime: ModelRuntime, scorer: EvidenceScorer) -> None:
        self.runtime = runtime
        self.scorer = scorer
        self.last_probe: float | None = None

    @classmethod
    def load(cls, spec: ModelSpec) -> "Engine":
        return cls(load_runtime(spec), EvidenceScorer())

    @property
    def info(self) -> ModelInfo:
        return self.runtime.info

    @property
    def load_seconds(self) -> float:
        return self.runtime.load_seconds

    def start(self, document: Document, config: TreeConfig, cache: NodeCache,
              on_event: Callable[[ProgressEvent], None], stats: RunStats) -> TreeBuild:
        """Begin a tree whose heights advance in `run_round`, possibly alongside other trees."""
        return Summarizer(self.runtime, self.scorer, config, cache).start(document, on_event, stats)

    def run_round(self, builds: Sequence[TreeBuild], wanted: Callable[[str], bool]) -> None:
        run_round(builds, wanted)

    def report(self, tasks: Sequence[ReportTask], cache: NodeCache | None = None,
               stats: GenerationStats | None = None) -> list[ReportBody]:
        """Helper reports about nodes of finished trees, in task order; critique and qa prompts share one
        batched generation with the helper adapter (or the base model with the helper prompt)."""
        return build_reports(self.runtime, self.scorer, tasks, cache, stats)

    def health(self) -> bool:
        """A one-token generation probe: the model is loaded and produces logits."""
        import torch

        ids = torch.tensor([[self.runtime.tokenizer.bos_token_id or 0]], device=self.runtime.device)
        with torch.inference_mode():
            logits = self.runtime.model(input_ids=ids).logits
        healthy = bool(torch.isfinite(logits).all())
        if healthy:
            self.last_probe = time.time()
        return healthy
