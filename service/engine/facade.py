"""The engine as the model serves it: the one implementation of `interface.Engine`."""

import time
from collections.abc import Callable, Sequence

import torch

from recursum.schemas.reports import ReportBody
from recursum.schemas.tree import ModelInfo
from recursum.service.engine.errors import ConfigError, ModelError
from recursum.service.engine.helpers.reports import build_reports
from recursum.service.engine.helpers.tasks import ReportTask
from recursum.service.engine.interface import Diagnosis, ServedBundle
from recursum.service.engine.models.diagnostics import diagnose
from recursum.service.engine.models.runtime import ModelRuntime, load_runtime
from recursum.service.engine.models.spec import ModelSpec
from recursum.service.engine.pipeline.document import Document
from recursum.service.engine.pipeline.events import ProgressEvent
from recursum.service.engine.pipeline.evidence import EvidenceScorer
from recursum.service.engine.pipeline.generate import MIN_INPUT_TOKENS
from recursum.service.engine.pipeline.node_cache import NodeCache
from recursum.service.engine.pipeline.recursion import Summarizer, TreeBuild
from recursum.service.engine.pipeline.refill import generate_scheduled
from recursum.service.engine.pipeline.results import (
    BatchRecord,
    GenerationRequest,
    GenerationSettings,
    GenerationStats,
    RunStats,
)
from recursum.service.engine.pipeline.scheduler import BatchHooks
from recursum.service.engine.pipeline.tree import Tree, TreeConfig


class ModelEngine:
    """One loaded model and evidence scorer, shared by every job of the process."""

    def __init__(self, runtime: ModelRuntime, scorer: EvidenceScorer) -> None:
        self.runtime = runtime
        self.scorer = scorer
        self.last_probe: float | None = None

    @classmethod
    def load(cls, spec: ModelSpec) -> "ModelEngine":
        return cls(load_runtime(spec), EvidenceScorer())

    @property
    def info(self) -> ModelInfo:
        return self.runtime.info

    @property
    def load_seconds(self) -> float:
        return self.runtime.load_seconds

    @property
    def scores_rewards(self) -> bool:
        return self.runtime.reward_head is not None

    @property
    def bundle(self) -> ServedBundle:
        adapters = self.runtime.adapter_set
        return ServedBundle(version=adapters.version, directory=adapters.directory)

    def loaded_bundles(self) -> list[str]:
        return list(self.runtime.loaded.sets)

    def load_bundle(self, directory: str | None) -> str:
        return self.runtime.with_bundle(directory).adapter_set.version

    def serve(self, version: str) -> None:
        self.runtime = self._view(version)

    def release(self, keep: set[str]) -> None:
        self.runtime.release(keep)

    def _view(self, version: str) -> ModelRuntime:
        view = self.runtime.serving(version)
        if view is None:
            raise ModelError(f"adapter set {version} is not loaded")
        return view

    def check(self, config: TreeConfig) -> None:
        window = self.runtime.context_window
        if config.summary_tokens + MIN_INPUT_TOKENS > window:
            raise ConfigError(f"summary_tokens {config.summary_tokens} leaves no room for input in "
                              f"the model's {window}-token context window")

    def start(self, document: Document, config: TreeConfig, cache: NodeCache,
              on_event: Callable[[ProgressEvent], None], stats: RunStats,
              bundle: str | None = None) -> TreeBuild:
        runtime = self.runtime if bundle is None else self._view(bundle)
        return Summarizer(runtime, self.scorer, config, cache).start(document, on_event, stats)

    def generate(self, requests: Sequence[GenerationRequest], settings: GenerationSettings, batch_size: int,
                 hooks: BatchHooks) -> None:
        generate_scheduled(self.runtime, requests, settings, batch_size, None, hooks)

    def summarize(self, document: Document, config: TreeConfig, cache: NodeCache,
                  on_event: Callable[[ProgressEvent], None] | None = None) -> Tree:
        return Summarizer(self.runtime, self.scorer, config, cache).summarize(document, on_event=on_event)

    def report(self, tasks: Sequence[ReportTask], cache: NodeCache | None = None,
               stats: GenerationStats | None = None) -> list[ReportBody]:
        """Critique and qa prompts share one batched generation with the helper adapter (or the base model
        with the helper prompt)."""
        return build_reports(self.runtime, self.scorer, tasks, cache, stats)

    def observe_batches(self, listener: Callable[[BatchRecord], None]) -> None:
        self.runtime.on_batch = listener

    def health(self) -> bool:
        ids = torch.tensor([[self.runtime.tokenizer.bos_token_id or 0]], device=self.runtime.device)
        with torch.inference_mode():
            logits = self.runtime.model(input_ids=ids).logits
        healthy = bool(torch.isfinite(logits).all())
        if healthy:
            self.last_probe = time.time()
        return healthy

    def describe(self, probe_tokens: int = 32) -> Diagnosis:
        return diagnose(self.runtime, probe_tokens)
