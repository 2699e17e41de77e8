"""The engine's interface: everything the API, the job worker and the CLI may ask of a loaded model.

Callers hold an `Engine` and never the runtime, summarizer or report builder behind it, so route services
and the worker are tested against a fake, and a process imports torch only when `load_engine` runs.
"""

from collections.abc import Callable, Sequence
from typing import Protocol

import msgspec

from recursum.schemas.reports import ReportBody
from recursum.schemas.tree import ModelInfo, Node
from recursum.service.engine.helpers.tasks import ReportTask
from recursum.service.engine.models.spec import ModelSpec
from recursum.service.engine.pipeline.document import Document
from recursum.service.engine.pipeline.events import ProgressEvent
from recursum.service.engine.pipeline.node_cache import NodeCache
from recursum.service.engine.pipeline.results import (
    BatchRecord,
    GenerationRequest,
    GenerationResult,
    GenerationSettings,
    GenerationStats,
    RunStats,
)
from recursum.service.engine.pipeline.scheduler import BatchHooks, Generation
from recursum.service.engine.pipeline.tree import Tree, TreeConfig


class Diagnosis(msgspec.Struct, kw_only=True):
    """What the runtime really loaded, and how fast it generates here (`recursum doctor`)."""

    torch: str
    device: str
    device_name: str
    cuda_available: bool
    bf16_native: bool
    dtype: str
    quantization: str
    adapters: str
    base: str
    load_seconds: float
    parameters_millions: float
    memory_footprint_mb: float
    gpu_memory_allocated_mb: float | None
    context_window: int
    probe_prompt_tokens: int
    prefill_tokens_per_second: float
    decode_tokens_per_second: float


class ServedBundle(msgspec.Struct, frozen=True, kw_only=True):
    """The adapter set new work uses: its version, and the bundle directory it came from (None: the bare
    model, or adapters named one by one)."""

    version: str
    directory: str | None

    @property
    def reloadable(self) -> bool:
        """Whether another replica can load it from the record: a bundle directory, or the bare model."""
        return self.directory is not None or self.version == "none"


class TreeRun(Protocol):
    """One document's tree in progress: a dataflow of nodes whose ready generations a `Scheduler` batches
    with those of other runs (`pipeline.scheduler.Run`), plus the root once it is done."""

    @property
    def done(self) -> bool: ...

    @property
    def root(self) -> Node: ...

    def ready(self) -> list[Generation]:
        """Generations whose inputs are done and whose results have not arrived."""
        ...

    def pending_keys(self) -> frozenset[str]:
        """Content addresses of every generation the run still waits for."""
        ...

    def accept(self, result: GenerationResult) -> None:
        """Take a finished generation: builds and commits the nodes it completes, plans their parents."""
        ...


class Engine(Protocol):
    """One loaded model and its evidence scorer, shared by every job and report of the process."""

    @property
    def info(self) -> ModelInfo: ...

    @property
    def load_seconds(self) -> float: ...

    @property
    def last_probe(self) -> float | None:
        """When `health` last succeeded (epoch seconds)."""
        ...

    @property
    def scores_rewards(self) -> bool:
        """Whether a reward adapter is loaded, so best-of-n keeps the best candidate, not the greedy one."""
        ...

    @property
    def bundle(self) -> ServedBundle:
        """The adapter set new work uses."""
        ...

    def loaded_bundles(self) -> list[str]:
        """Versions of the adapter sets in memory: the served one and those running jobs still use."""
        ...

    def load_bundle(self, directory: str | None) -> str:
        """Validate and load the bundle at `directory` (None: the bare model) beside the sets in memory,
        switching nothing; returns its version. A bundle that fails (`ModelError`) leaves no trace."""
        ...

    def serve(self, version: str) -> None:
        """New work uses the loaded set `version`; runs already started keep theirs."""
        ...

    def release(self, keep: set[str]) -> None:
        """Unload the sets not in `keep` and not served (no running job uses them)."""
        ...

    def check(self, config: TreeConfig) -> None:
        """Raise `ConfigError` for settings this model cannot serve (a summary that fills its window)."""
        ...

    def start(self, document: Document, config: TreeConfig, cache: NodeCache,
              on_event: Callable[[ProgressEvent], None], stats: RunStats,
              bundle: str | None = None) -> TreeRun:
        """Begin a tree whose generations a `Scheduler` runs, possibly alongside other trees, on the loaded
        adapter set `bundle` (None: the served one)."""
        ...

    def generate(self, requests: Sequence[GenerationRequest], settings: GenerationSettings, batch_size: int,
                 hooks: BatchHooks) -> None:
        """One continuous batch of requests under `settings`, each with its own adapter (a `Scheduler`'s
        `GenerateBatch`): results, failures and refills go through `hooks` as they happen."""
        ...

    def summarize(self, document: Document, config: TreeConfig, cache: NodeCache,
                  on_event: Callable[[ProgressEvent], None] | None = None) -> Tree:
        """A whole tree at once (the local CLI)."""
        ...

    def report(self, tasks: Sequence[ReportTask], cache: NodeCache | None = None,
               stats: GenerationStats | None = None) -> list[ReportBody]:
        """Helper reports about nodes of finished trees, in task order."""
        ...

    def observe_batches(self, listener: Callable[[BatchRecord], None]) -> None:
        """Have `listener` told of every generate call as it finishes (live metrics)."""
        ...

    def health(self) -> bool:
        """A one-token generation probe: the model is loaded and produces finite logits."""
        ...

    def describe(self, probe_tokens: int = 32) -> Diagnosis:
        """Device, dtype, quantization, adapters, memory, and prefill and decode speed on a short probe."""
        ...


def load_engine(spec: ModelSpec) -> Engine:
    """Load the model `spec` names; the only door to torch, so importing callers stays light."""
    from recursum.service.engine.facade import ModelEngine

    return ModelEngine.load(spec)
