"""A model-free `Engine`: one leaf per document whose summary is its first sentence, reports without a model.

Route services and the job worker are tested against it, so they are shown to need nothing beyond the
engine's interface (no torch, no tokenizer, no runtime).
"""

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from recursum.schemas.events import HeightDone, HeightStarted
from recursum.schemas.reports import (
    CompareReport,
    CompareRequest,
    CompareSide,
    CritiqueReport,
    EvidenceReport,
    QaAnswer,
    ReportBody,
)
from recursum.schemas.tree import ModelInfo, Node, Sentence, Span
from recursum.service.engine.errors import ConfigError, ModelError
from recursum.service.engine.helpers.tasks import ReportTask
from recursum.service.engine.interface import Diagnosis, ServedBundle
from recursum.service.engine.pipeline.document import Document
from recursum.service.engine.pipeline.events import NodeDone, ProgressEvent
from recursum.service.engine.pipeline.node_cache import NodeCache
from recursum.service.engine.pipeline.prompts import PromptInput
from recursum.service.engine.pipeline.results import (
    BatchRecord,
    GenerationRequest,
    GenerationResult,
    GenerationSettings,
    GenerationStats,
    RunStats,
)
from recursum.service.engine.pipeline.scheduler import BatchHooks, Generation, Scheduler
from recursum.service.engine.pipeline.tree import Chunk, Tree, TreeConfig

CONTEXT_WINDOW = 512


class FakeRun:
    """A one-node tree: the node's one generation is ready at once, and the tree is done when it arrives."""

    def __init__(self, document: Document, config: TreeConfig,
                 on_event: Callable[[ProgressEvent], None], bundle: str = "none") -> None:
        first_sentence = document.text.split(".")[0].strip() + "."
        self.node = Node(id="leaf-0", key=f"fake:{bundle}:{document.id}", height=0, index=0, role="chunk",
                         adapter=None, span=Span(0, len(document.text)), children=(), summary=first_sentence,
                         sentences=(), adapter_version=None if bundle == "none" else bundle)
        self.generation = Generation(
            request=GenerationRequest(key=self.node.key, adapter=None,
                                      prompt=PromptInput(role="chunk", passage=document.text)),
            settings=GenerationSettings(max_new_tokens=config.summary_tokens), batch_size=config.batch_size)
        self._emit = on_event
        self.done = False
        on_event(HeightStarted(height=0, nodes=1, cached=0))

    @property
    def root(self) -> Node:
        return self.node

    def ready(self) -> list[Generation]:
        return [] if self.done else [self.generation]

    def pending_keys(self) -> frozenset[str]:
        return frozenset() if self.done else frozenset({self.node.key})

    def accept(self, result: GenerationResult) -> None:
        self.done = True
        self._emit(NodeDone(node=self.node))
        self._emit(HeightDone(height=0, nodes=1))


def _compare(task: ReportTask) -> CompareReport:
    """Sides as given, a text side split at full stops with no evidence found for any sentence."""
    def side(ref) -> CompareSide:
        if isinstance(ref, str):
            sentences = tuple(Sentence(text=part.strip() + ".", support=0.0, source_support=0.0,
                                       unsupported=True) for part in ref.split(".") if part.strip())
            return CompareSide(label="request", summary=ref, sentences=sentences, mean_support=0.0,
                               unsupported=len(sentences))
        return CompareSide(label="chosen", summary=task.node.summary, sentences=task.node.sentences,
                           mean_support=0.0, unsupported=0)

    return CompareReport(a=side(task.request.a), b=side(task.request.b), aligned=())


class FakeEngine:
    """Implements `recursum.service.engine.interface.Engine`; records what it was asked."""

    def __init__(self, scores_rewards: bool = False, healthy: bool = True,
                 fail_reports: bool = False, poison: str | None = None) -> None:
        self.bundles: dict[str, str | None] = {"none": None}  # loaded adapter sets: version -> directory
        self.served = "none"
        self.info = ModelInfo(base="fake", fingerprint="fake-fingerprint", quantization="none",
                              dtype="float32", device="cpu", adapters={})
        self.load_seconds = 0.0
        self.last_probe: float | None = None
        self.scores_rewards = scores_rewards
        self.healthy = healthy
        self.fail_reports = fail_reports
        self.poison = poison
        self.batch_listener: Callable[[BatchRecord], None] | None = None
        self.reported: list[ReportTask] = []

    def observe_batches(self, listener: Callable[[BatchRecord], None]) -> None:
        self.batch_listener = listener

    @property
    def bundle(self) -> ServedBundle:
        return ServedBundle(version=self.served, directory=self.bundles[self.served])

    def loaded_bundles(self) -> list[str]:
        return list(self.bundles)

    def load_bundle(self, directory: str | None) -> str:
        """A directory's version is its name; one named `broken*` is refused, as a bad bundle is."""
        if directory is None:
            return "none"
        name = Path(directory).name
        if name.startswith("broken"):
            raise ModelError(f"{directory} is not an adapter bundle: it has no manifest.json")
        self.bundles[name] = directory
        return name

    def serve(self, version: str) -> None:
        if version not in self.bundles:
            raise ModelError(f"adapter set {version} is not loaded")
        self.served = version
        self.info = msgspec.structs.replace(self.info, bundle=version)

    def release(self, keep: set[str]) -> None:
        self.bundles = {v: d for v, d in self.bundles.items() if v in keep | {self.served, "none"}}

    def check(self, config: TreeConfig) -> None:
        if config.summary_tokens >= CONTEXT_WINDOW:
            raise ConfigError(f"summary_tokens {config.summary_tokens} leaves no room for input in the "
                              f"fake model's {CONTEXT_WINDOW}-token context window")

    def start(self, document: Document, config: TreeConfig, cache: NodeCache,
              on_event: Callable[[ProgressEvent], None], stats: RunStats,
              bundle: str | None = None) -> FakeRun:
        if bundle is not None and bundle not in self.bundles:
            raise ModelError(f"adapter set {bundle} is not loaded")
        return FakeRun(document, config, on_event, bundle or self.served)

    def generate(self, requests: Sequence[GenerationRequest], settings: GenerationSettings, batch_size: int,
                 hooks: BatchHooks) -> None:
        """Each request's "summary" is its first sentence; a passage containing `poison` fails its batch."""
        while requests:
            if self.poison is not None and any(self.poison in r.prompt.passage for r in requests):
                hooks.on_failure([r.key for r in requests],
                                 RuntimeError(f"the fake model failed on {self.poison!r}"))
            else:
                for request in requests:
                    if hooks.wanted(request.key):
                        hooks.on_result(self._summary(request))
            requests = hooks.refill(batch_size)

    def _summary(self, request: GenerationRequest) -> GenerationResult:
        passage = request.prompt.passage
        result = GenerationResult(key=request.key, text=passage.split(".")[0].strip() + ".",
                                  prompt_tokens=len(passage.split()),
                                  generated_tokens=len(passage.split(".")[0].split()), truncated=False)
        if self.batch_listener is not None:  # one "batch" per node, as it finishes
            self.batch_listener(BatchRecord(sequences=1, prompt_tokens=result.prompt_tokens,
                                            generated_tokens=result.generated_tokens, decode_steps=1,
                                            prefill_seconds=0.01, decode_seconds=0.01, truncated=0))
        return result

    def summarize(self, document: Document, config: TreeConfig, cache: NodeCache,
                  on_event: Callable[[ProgressEvent], None] | None = None) -> Tree:
        run = self.start(document, config, cache, on_event or (lambda event: None), RunStats())
        scheduler = Scheduler(self.generate)
        scheduler.add("local", "local", run)
        scheduler.run_batch()
        return Tree(document_id=document.id, title=document.title, text_length=len(document.text),
                    config=config, model=self.info, chunks=[Chunk(index=0, span=run.node.span, tokens=1)],
                    heights=[[run.node.id]], nodes={run.node.id: run.node}, root=run.node.id)

    def report(self, tasks: Sequence[ReportTask], cache: NodeCache | None = None,
               stats: GenerationStats | None = None) -> list[ReportBody]:
        if self.fail_reports:
            raise RuntimeError("the fake helper failed")
        self.reported.extend(tasks)
        bodies: dict[str, ReportBody] = {
            "evidence": EvidenceReport(summary="", sentences=(), unsupported=0),
            "critique": CritiqueReport(items=()),
        }
        return [_compare(task) if isinstance(task.request, CompareRequest)
                else bodies.get(type(task.request).__struct_config__.tag)
                or QaAnswer(question="", answer="fake", citations=(), supported=False) for task in tasks]

    def health(self) -> bool:
        if self.healthy:
            self.last_probe = time.time()
        return self.healthy

    def describe(self, probe_tokens: int = 32) -> Diagnosis:
        return Diagnosis(torch="none", device="cpu", device_name="fake", cuda_available=False,
                         bf16_native=False, dtype="float32", quantization="none", adapters="none",
                         base="fake",
                         load_seconds=0.0, parameters_millions=0.0, memory_footprint_mb=0.0,
                         gpu_memory_allocated_mb=None, context_window=CONTEXT_WINDOW, probe_prompt_tokens=0,
                         prefill_tokens_per_second=0.0, decode_tokens_per_second=0.0)


class HoldsResults:
    """Mixed into an engine: each generated result (counted in metrics as usual) is held back until `let_go`
    is set, and `holding` says one is waiting, so a test can act while a job is mid-batch."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.holding, self.let_go = threading.Event(), threading.Event()

    def generate(self, requests, settings, batch_size, hooks) -> None:
        def held(result) -> None:
            self.holding.set()
            self.let_go.wait(30)
            hooks.on_result(result)

        super().generate(requests, settings, batch_size, dataclasses.replace(hooks, on_result=held))


class HeldEngine(HoldsResults, FakeEngine):
    """The fake engine, holding its results back."""
