"""The recursion: chunk → summarize every chunk (height 0) → merge height by height to one root.

Each height is one call to `generate_batched`: nodes of a height are independent, so they share
batches; only heights run in sequence.
"""

import hashlib
import time
from collections.abc import Callable, Sequence

import msgspec

from clients.schemas import HeightDone, HeightStarted, Node, Role, Span
from service.engine.chunking import chunk_document
from service.engine.document import Document
from service.engine.events import NodeDone, ProgressEvent
from service.engine.evidence import EvidenceScorer, leaf_evidence, merge_evidence
from service.engine.generate import (
    GenerationRequest,
    GenerationResult,
    GenerationSettings,
    GenerationStats,
    generate_batched,
)
from service.engine.node_cache import MemoryNodeCache, NodeCache
from service.engine.prompts import PromptInput, chunk_prompt, merge_prompt
from service.engine.runtime import ModelRuntime
from service.engine.sentences import sentence_spans
from service.engine.tokens import count_tokens_batch, encoding
from service.engine.tree import Chunk, Tree, TreeConfig


class RunStats(msgspec.Struct, kw_only=True):
    """Where a run's time went: generation (prefill/decode inside), evidence, everything."""

    generation: GenerationStats = msgspec.field(default_factory=GenerationStats)
    evidence_seconds: float = 0.0
    total_seconds: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0


class Cancelled(Exception):
    """Raised when `should_stop` turned true before the tree was finished."""


class _Planned(msgspec.Struct, frozen=True, kw_only=True):
    """A node before generation: where it sits and what its prompt is."""

    height: int
    index: int
    role: Role
    span: Span
    children: tuple[Node, ...]
    prompt: PromptInput
    key: str


def generation_settings(config: TreeConfig) -> GenerationSettings:
    return GenerationSettings(
        max_new_tokens=config.summary_tokens, temperature=config.temperature, seed=config.seed
    )


def node_key(runtime: ModelRuntime, adapter: str | None, prompt: PromptInput,
             settings: GenerationSettings) -> str:
    """Content address: same model, adapter, prompt inputs and settings give the same node."""
    adapter_version = runtime.info.adapters.get(adapter) if adapter else None
    material = msgspec.json.encode(
        [runtime.info.fingerprint, runtime.info.quantization, adapter, adapter_version,
         prompt, settings]
    )
    return hashlib.sha256(material).hexdigest()


def preceding_text(text: str, start: int, tokens: int) -> str:
    """The raw text just before `start`, at most `tokens` cl100k tokens (Wu et al.'s context,
    taken from the source rather than the previous summary so a height stays one batch)."""
    if tokens == 0 or start == 0:
        return ""
    window = text[max(0, start - tokens * 8) : start]
    ids = encoding().encode_ordinary(window)
    return encoding().decode(ids[-tokens:]).lstrip()


def merge_groups(children: Sequence[Node], budget: int, max_children: int) -> list[list[Node]]:
    """Pack consecutive children into groups within `budget` tokens and `max_children`.

    A group always takes at least two children (or the recursion could stall on long
    summaries; the context guard still bounds the prompt), and a lone last child joins
    the group before it.
    """
    sizes = count_tokens_batch([child.summary for child in children])
    groups: list[list[Node]] = []
    current: list[Node] = []
    total = 0
    for child, size in zip(children, sizes, strict=True):
        if len(current) >= 2 and (total + size > budget or len(current) >= max_children):
            groups.append(current)
            current, total = [], 0
        current.append(child)
        total += size
    if len(current) == 1 and groups:
        groups[-1].append(current[0])
    else:
        groups.append(current)
    return groups


class Summarizer:
    """Runs the recursion for one document with a loaded runtime and evidence scorer."""

    def __init__(self, runtime: ModelRuntime, scorer: EvidenceScorer, config: TreeConfig,
                 cache: NodeCache | None = None) -> None:
        self.runtime = runtime
        self.scorer = scorer
        self.config = config
        self.cache = cache if cache is not None else MemoryNodeCache()
        self.settings = generation_settings(config)

    def summarize(
        self,
        document: Document,
        on_event: Callable[[ProgressEvent], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        stats: RunStats | None = None,
    ) -> Tree:
        """Build the whole tree; raises `Cancelled` if `should_stop` fires first."""
        stats = stats if stats is not None else RunStats()
        emit = on_event or (lambda event: None)
        started = time.perf_counter()
        chunks = chunk_document(document.text, self.config.chunk_tokens)
        level = self._run_height(document, self._plan_leaves(document.text, chunks),
                                 emit, should_stop, stats)
        heights = [level]
        while len(level) > 1:
            level = self._run_height(document, self._plan_merges(level), emit, should_stop, stats)
            heights.append(level)
        stats.total_seconds += time.perf_counter() - started
        return Tree(
            document_id=document.id,
            title=document.title,
            text_length=len(document.text),
            config=self.config,
            model=self.runtime.info,
            chunks=chunks,
            heights=[[node.id for node in nodes] for nodes in heights],
            nodes={node.id: node for nodes in heights for node in nodes},
            root=level[0].id,
        )

    def _plan(self, height: int, index: int, role: Role, span: Span,
              children: tuple[Node, ...], prompt: PromptInput) -> _Planned:
        key = node_key(self.runtime, self.runtime.adapter_for(role), prompt, self.settings)
        return _Planned(height=height, index=index, role=role, span=span, children=children,
                        prompt=prompt, key=key)

    def _plan_leaves(self, text: str, chunks: list[Chunk]) -> list[_Planned]:
        with_context = self.config.context == "preceding-text"
        return [
            self._plan(0, chunk.index, "chunk", chunk.span, (), chunk_prompt(
                text[chunk.span.start : chunk.span.end],
                preceding_text(text, chunk.span.start, self.config.context_tokens)
                if with_context else "",
            ))
            for chunk in chunks
        ]

    def _plan_merges(self, level: list[Node]) -> list[_Planned]:
        height = level[0].height + 1
        groups = merge_groups(level, self.config.merge_tokens, self.config.max_children)
        return [
            self._plan(height, index, "merge", Span(group[0].span.start, group[-1].span.end),
                       tuple(group), merge_prompt([child.summary for child in group]))
            for index, group in enumerate(groups)
        ]

    def _run_height(self, document: Document, planned: list[_Planned], emit,
                    should_stop, stats: RunStats) -> list[Node]:
        height = planned[0].height
        cached = {key: hit for key in {p.key for p in planned}
                  if (hit := self.cache.get(key)) is not None}
        stats.cache_hits += len(cached)
        emit(HeightStarted(height=height, nodes=len(planned), cached=len(cached)))
        plans_by_key: dict[str, list[_Planned]] = {}
        for plan in planned:
            plans_by_key.setdefault(plan.key, []).append(plan)
        nodes: dict[int, Node] = {}

        def finish(result: GenerationResult, from_cache: bool) -> None:
            for plan in plans_by_key[result.key]:
                node = self._build_node(document.text, plan, result, from_cache, stats)
                nodes[plan.index] = node
                emit(NodeDone(node=node))

        for result in cached.values():
            finish(result, from_cache=True)

        def store(result: GenerationResult) -> None:
            self.cache.put(result)
            finish(result, from_cache=False)

        missing = [plans[0] for key, plans in plans_by_key.items() if key not in cached]
        stats.cache_misses += len(missing)
        requests = [
            GenerationRequest(key=plan.key, adapter=self.runtime.adapter_for(plan.role),
                              prompt=plan.prompt)
            for plan in missing
        ]
        generate_batched(self.runtime, requests, self.settings, self.config.batch_size,
                         stats.generation, on_result=store, should_stop=should_stop)
        if len(nodes) < len(planned):
            raise Cancelled(f"stopped at height {height} with {len(nodes)}/{len(planned)} nodes")
        emit(HeightDone(height=height, nodes=len(planned)))
        return [nodes[index] for index in range(len(planned))]

    def _build_node(self, text: str, plan: _Planned, result: GenerationResult,
                    from_cache: bool, stats: RunStats) -> Node:
        started = time.perf_counter()
        config = self.config
        if plan.role == "chunk":
            source = sentence_spans(text[plan.span.start : plan.span.end], plan.span.start)
            sentences = leaf_evidence(self.scorer, result.text, text, source,
                                      config.evidence_links, config.evidence_threshold)
        else:
            source = []
            sentences = merge_evidence(self.scorer, result.text, plan.children,
                                       config.evidence_links, config.evidence_threshold)
        stats.evidence_seconds += time.perf_counter() - started
        return Node(
            id=hashlib.sha256(f"{plan.key}:{plan.span.start}:{plan.span.end}".encode())
            .hexdigest()[:32],
            key=plan.key,
            height=plan.height,
            index=plan.index,
            role=plan.role,
            adapter=self.runtime.adapter_for(plan.role),
            span=plan.span,
            children=tuple(child.id for child in plan.children),
            summary=result.text,
            sentences=sentences,
            source_sentences=tuple(source),
            prompt_tokens=result.prompt_tokens,
            generated_tokens=result.generated_tokens,
            truncated=result.truncated,
            cached=from_cache,
        )
