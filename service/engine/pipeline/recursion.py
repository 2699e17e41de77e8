"""The recursion: chunk → summarize every chunk (height 0) → merge groups of children until a height is
small enough for the root, which composes it where its words fit in `root_words` (Wu et al.'s top
heights) and merges it otherwise.

Nodes are a dataflow over a shape fixed in advance (`shape.py`): a merge is ready when its own children
are done, and the `Scheduler` batches whatever is ready, across heights and across documents.
"""

import hashlib
import time
from collections.abc import Callable

import msgspec

from recursum.schemas.events import HeightDone, HeightStarted
from recursum.schemas.tree import Candidate, DroppedSentence, EvidenceLink, Node, Role, Sentence, Span
from recursum.service.engine.models.reward import score_pairs
from recursum.service.engine.models.runtime import ModelRuntime
from recursum.service.engine.pipeline.chunking import chunk_document
from recursum.service.engine.pipeline.document import Document
from recursum.service.engine.pipeline.events import NodeDone, ProgressEvent
from recursum.service.engine.pipeline.evidence import EvidenceScorer, leaf_evidence, merge_evidence
from recursum.service.engine.pipeline.node_cache import MemoryNodeCache, NodeCache
from recursum.service.engine.pipeline.prompts import PromptInput, chunk_prompt, merge_prompt, template_digest
from recursum.service.engine.pipeline.refill import generate_scheduled
from recursum.service.engine.pipeline.results import (
    GenerationRequest,
    GenerationResult,
    GenerationSettings,
    RunStats,
)
from recursum.service.engine.pipeline.scheduler import Generation, Scheduler
from recursum.service.engine.pipeline.screen import extractive_summary, screen
from recursum.service.engine.pipeline.sentences import sentence_spans
from recursum.service.engine.pipeline.shape import tree_shape
from recursum.service.engine.pipeline.tokens import encoding
from recursum.service.engine.pipeline.tree import Chunk, Tree, TreeConfig


class Cancelled(Exception):
    """Raised when `should_stop` turned true before the tree was finished."""


class _Sample(msgspec.Struct, frozen=True, kw_only=True):
    """One generation a node needs: the greedy summary, or one of best-of-n's samples."""

    key: str  # the generation's content address (the node cache key)
    settings: GenerationSettings
    source: str  # "greedy" or "sample:<i>", kept on candidates for evaluators


class _Planned(msgspec.Struct, frozen=True, kw_only=True):
    """A node before generation: where it sits, what its prompt is, which generations it needs."""

    height: int
    index: int
    role: Role
    span: Span
    children: tuple[Node, ...]
    prompt: PromptInput
    key: str
    samples: tuple[_Sample, ...]


class _Screening(msgspec.Struct, frozen=True, kw_only=True):
    """One generated summary's sentences with evidence, and what the screen keeps and drops of them."""

    sentences: tuple[Sentence, ...]
    source: list[Span]  # a leaf's source sentence spans
    kept: tuple[Sentence, ...]
    dropped: tuple[DroppedSentence, ...] = ()

    @property
    def survival(self) -> tuple[float, float]:
        """(share of the sentences kept, their mean source support): how well the summary is grounded."""
        if not self.kept:
            return 0.0, 0.0
        return (len(self.kept) / len(self.sentences),
                sum(s.source_support for s in self.kept) / len(self.kept))


def generation_settings(config: TreeConfig) -> GenerationSettings:
    return GenerationSettings(
        max_new_tokens=config.summary_tokens, temperature=config.temperature, seed=config.seed
    )


def node_key(runtime: ModelRuntime, role: Role, prompt: PromptInput, settings: GenerationSettings,
             sample: int = 0) -> str:
    """Content address: same model, adapter (by role and fingerprint, whatever name the set loaded it
    under), prompt wording and inputs, and settings give the same node.

    `sample` tells apart best-of-n's samples, which share settings so that they share batches.
    """
    adapter = runtime.adapter_for(role)
    info = runtime.info
    parts = [info.fingerprint, info.quantization, info.dtype, role if adapter else None,
             runtime.adapter_version(role) if adapter else None, template_digest(prompt), prompt, settings]
    return hashlib.sha256(msgspec.json.encode(parts + [sample] if sample else parts)).hexdigest()


def preceding_text(text: str, start: int, tokens: int) -> str:
    """The raw text just before `start`, at most `tokens` cl100k tokens (Wu et al.'s context,
    taken from the source rather than the previous summary so a height stays one batch)."""
    if tokens == 0 or start == 0:
        return ""
    window = text[max(0, start - tokens * 8) : start]
    ids = encoding().encode_ordinary(window)
    return encoding().decode(ids[-tokens:]).lstrip()


def _node_id(plan: _Planned) -> str:
    """The content address plus the node's place: unique in a tree even where a book repeats itself."""
    return hashlib.sha256(f"{plan.key}:{plan.span.start}:{plan.span.end}".encode()).hexdigest()[:32]


class TreeBuild:
    """One document's recursion as a dataflow: a node is planned once its inputs are done (a leaf at once,
    a merge when its own children are), its generations come from the cache or the scheduler, and it is
    built as soon as they are all in, so builds share batches and no height waits for the one below.
    """

    def __init__(self, summarizer: "Summarizer", document: Document,
                 emit: Callable[[ProgressEvent], None], stats: RunStats) -> None:
        self.summarizer = summarizer
        self.document = document
        self.emit = emit
        self.stats = stats
        self.chunks = chunk_document(document.text, summarizer.config.chunk_tokens)
        self.shape = tree_shape(len(self.chunks), summarizer.config)
        self.heights: list[list[Node | None]] = [[None] * size for size in self.shape.levels]
        self._plans: dict[tuple[int, int], _Planned] = {}  # planned and not yet built, by (height, index)
        self._waiting: dict[str, list[_Planned]] = {}  # generation key -> the plans that need it
        self._results: dict[str, GenerationResult] = {}
        self._from_cache: set[str] = set()
        self._announced: set[int] = set()  # heights whose HeightStarted went out
        self._plan_nodes(summarizer._plan_leaves(document.text, self.chunks))

    @property
    def done(self) -> bool:
        return self.heights[-1][0] is not None

    @property
    def root(self) -> Node:
        return self.heights[-1][0]

    def _plan_nodes(self, planned: list[_Planned]) -> None:
        """Plan nodes of one height: cached generations are taken at once, compositions built at once."""
        fresh: list[str] = []
        for plan in planned:
            self._plans[(plan.height, plan.index)] = plan
            for sample in plan.samples:
                if sample.key not in self._waiting:
                    fresh.append(sample.key)
                self._waiting.setdefault(sample.key, []).append(plan)
        cache = self.summarizer.cache
        cached = [hit for key in fresh if key not in self._results and (hit := cache.get(key)) is not None]
        self.stats.cache_hits += len(cached)
        self.stats.cache_misses += len(fresh) - len(cached)
        height = planned[0].height
        if height not in self._announced:
            self._announced.add(height)
            self.emit(HeightStarted(height=height, nodes=self.shape.levels[height], cached=len(cached)))
        for result in cached:
            self.accept(result, from_cache=True)
        for plan in planned:
            if not plan.samples:  # a composition: nothing to generate
                self._finish(plan, self.summarizer._compose_node(plan))

    def ready(self) -> list[Generation]:
        """Generations of planned nodes still missing, the highest nodes first (they lead to the root)."""
        adapter_for = self.summarizer.runtime.adapter_for
        batch_size = self.summarizer.config.batch_size
        needed: dict[str, Generation] = {}
        for (height, index) in sorted(self._plans, key=lambda place: (-place[0], place[1])):
            plan = self._plans[(height, index)]
            for sample in plan.samples:
                if sample.key not in self._results and sample.key not in needed:
                    needed[sample.key] = Generation(settings=sample.settings, batch_size=batch_size,
                                                    request=GenerationRequest(key=sample.key,
                                                                              adapter=adapter_for(plan.role),
                                                                              prompt=plan.prompt))
        return list(needed.values())

    def pending_keys(self) -> frozenset[str]:
        """Content addresses of the generations the planned nodes still wait for."""
        return frozenset(sample.key for plan in self._plans.values() for sample in plan.samples
                         if sample.key not in self._results)

    def accept(self, result: GenerationResult, from_cache: bool = False) -> None:
        """Take a generation (a fresh one goes to the cache first); a node is built once all its samples
        are in."""
        plans = self._waiting.get(result.key, ())
        if plans:
            if from_cache:
                self._from_cache.add(result.key)
            elif result.key not in self._results:
                self.summarizer.cache.put(result)
            self._results[result.key] = result
        for plan in list(plans):
            if self._plans.get((plan.height, plan.index)) is not plan:  # built, or replaced by a resample
                continue
            if any(s.key not in self._results for s in plan.samples):
                continue
            results = [self._results[sample.key] for sample in plan.samples]
            cached = all(sample.key in self._from_cache for sample in plan.samples)
            node = self.summarizer._build_node(self.document.text, plan, results, cached, self.stats)
            if node.extractive and (retry := self.summarizer._with_resample(plan)) is not None:
                self._resample(retry)
                continue
            self._finish(plan, node)

    def _resample(self, retry: _Planned) -> None:
        """Wait for the retry's new sample: from the cache, or from a later batch."""
        self._plans[(retry.height, retry.index)] = retry
        key = retry.samples[-1].key
        self._waiting.setdefault(key, []).append(retry)
        if (hit := self.summarizer.cache.get(key)) is None:
            self.stats.cache_misses += 1
        else:
            self.stats.cache_hits += 1
            self.accept(hit, from_cache=True)

    def _finish(self, plan: _Planned, node: Node) -> None:
        """Commit the node, close its height if it was the last, and plan its parent once it is ready."""
        height, index = plan.height, plan.index
        del self._plans[(height, index)]
        level = self.heights[height]
        level[index] = node
        self.emit(NodeDone(node=node))
        if all(level):
            self.emit(HeightDone(height=height, nodes=len(level)))
        if height + 1 == len(self.heights):
            return
        parent = self.shape.parent(height, index)
        children = [level[i] for i in self.shape.groups(height)[parent]]
        if all(children):
            self._plan_nodes([self.summarizer._plan_parent(height + 1, parent, children,
                                                           is_root=height + 2 == len(self.heights))])

    def tree(self) -> Tree:
        summarizer = self.summarizer
        return Tree(
            document_id=self.document.id,
            title=self.document.title,
            text_length=len(self.document.text),
            config=summarizer.config,
            model=summarizer.runtime.info,
            chunks=self.chunks,
            heights=[[node.id for node in nodes] for nodes in self.heights],
            nodes={node.id: node for nodes in self.heights for node in nodes},
            root=self.root.id,
        )


class Summarizer:
    """Runs the recursion with a loaded runtime and evidence scorer under one configuration."""

    def __init__(self, runtime: ModelRuntime, scorer: EvidenceScorer, config: TreeConfig,
                 cache: NodeCache | None = None) -> None:
        self.runtime = runtime
        self.scorer = scorer
        self.config = config
        self.cache = cache if cache is not None else MemoryNodeCache()
        self.settings = generation_settings(config)
        self.sample_settings = msgspec.structs.replace(self.settings, temperature=config.sample_temperature)

    def start(self, document: Document, on_event: Callable[[ProgressEvent], None] | None = None,
              stats: RunStats | None = None) -> TreeBuild:
        """Chunk the document and take cached leaves; the rest comes from a `Scheduler`."""
        return TreeBuild(self, document, on_event or (lambda event: None),
                         stats if stats is not None else RunStats())

    def summarize(
        self,
        document: Document,
        on_event: Callable[[ProgressEvent], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        stats: RunStats | None = None,
    ) -> Tree:
        """Build the whole tree through the scheduler alone; raises `Cancelled` if `should_stop` fires."""
        started = time.perf_counter()
        build = self.start(document, on_event, stats)
        scheduler = Scheduler(lambda requests, settings, batch_size, hooks: generate_scheduled(
            self.runtime, requests, settings, batch_size, build.stats.generation, hooks))
        scheduler.add("local", "local", build)
        stop = should_stop or (lambda: False)
        while not build.done:
            if stop():
                raise Cancelled(f"stopped with {sum(map(bool, sum(build.heights, [])))} nodes done")
            failures = scheduler.run_batch(lambda key: not stop())
            if failures:
                raise failures["local"]
        build.stats.total_seconds += time.perf_counter() - started
        return build.tree()

    def _plan(self, height: int, index: int, role: Role, span: Span,
              children: tuple[Node, ...], prompt: PromptInput) -> _Planned:
        samples = (_Sample(key=node_key(self.runtime, role, prompt, self.settings), settings=self.settings,
                           source="greedy"),) + tuple(
            _Sample(key=node_key(self.runtime, role, prompt, self.sample_settings, sample=i),
                    settings=self.sample_settings, source=f"sample:{i}")
            for i in range(1, self.config.best_of)
        )
        key = samples[0].key
        if len(samples) > 1:  # the chosen summary also depends on the samples and the reward model
            reward_version = self.runtime.info.adapters.get("reward")
            material = [[s.key for s in samples], reward_version, self.config.best_of_margin]
            key = hashlib.sha256(msgspec.json.encode(material)).hexdigest()
        return _Planned(height=height, index=index, role=role, span=span, children=children,
                        prompt=prompt, key=key, samples=samples)

    def _plan_leaves(self, text: str, chunks: list[Chunk]) -> list[_Planned]:
        with_context = self.config.context == "preceding-text"
        return [
            self._plan(0, chunk.index, "chunk", chunk.span, (), chunk_prompt(
                text[chunk.span.start : chunk.span.end],
                preceding_text(text, chunk.span.start, self.config.context_tokens)
                if with_context else "",
                self.config.question,
            ))
            for chunk in chunks
        ]

    def _plan_parent(self, height: int, index: int, children: list[Node], is_root: bool) -> _Planned:
        """A merge of `children`; the root composes them instead once their words fit in `root_words`."""
        span = Span(children[0].span.start, children[-1].span.end)
        prompt = merge_prompt([child.summary for child in children], self.config.question)
        if not is_root or sum(len(child.summary.split()) for child in children) > self.config.root_words:
            return self._plan(height, index, "merge", span, tuple(children), prompt)
        material = ["composed", [child.key for child in children]]
        return _Planned(height=height, index=index, role="merge", span=span, children=tuple(children),
                        prompt=prompt, key=hashlib.sha256(msgspec.json.encode(material)).hexdigest(),
                        samples=())

    def _evidence(self, text: str, plan: _Planned, summary: str) -> tuple[tuple[Sentence, ...], list[Span]]:
        """The summary's sentences with evidence, and (for a leaf) the source sentence spans."""
        config = self.config
        if plan.role == "chunk":
            source = sentence_spans(text[plan.span.start : plan.span.end], plan.span.start)
            return leaf_evidence(self.scorer, summary, text, source, config.evidence_links,
                                 config.evidence_threshold), source
        return merge_evidence(self.scorer, summary, plan.children, config.evidence_links,
                              config.evidence_threshold), []

    def _screening(self, text: str, plan: _Planned, summary: str) -> _Screening:
        sentences, source = self._evidence(text, plan, summary)
        if not self.config.screen:
            return _Screening(sentences=sentences, source=source, kept=sentences)
        span_text = text[plan.span.start : plan.span.end]
        kept, dropped = screen(sentences, span_text, self.config.evidence_threshold)
        return _Screening(sentences=sentences, source=source, kept=kept, dropped=dropped)

    def _choose(self, plan: _Planned, results: list[GenerationResult],
                screenings: list[_Screening]) -> tuple[int, list[float] | None]:
        """Best-of-n among the samples the screen leaves something of (all, if it leaves nothing of any):
        the one the reward adapter scores highest, if it beats the greedy summary by more than
        `best_of_margin`; without a reward adapter, the one whose sentences best survive the screen (the
        greedy one on a tie). The rest stay as candidates."""
        eligible = [i for i, screened in enumerate(screenings) if screened.kept] or list(range(len(results)))
        if len(results) == 1 or self.runtime.reward_head is None:
            return max(eligible, key=lambda i: (screenings[i].survival, -i)), None
        rewards = score_pairs(self.runtime, [plan.prompt] * len(results), [r.text for r in results],
                              self.config.batch_size)
        best = max(eligible, key=lambda i: (rewards[i], -i))
        keeps_greedy = 0 in eligible and rewards[best] - rewards[0] <= self.config.best_of_margin
        return (0 if keeps_greedy else best), rewards

    def _with_resample(self, plan: _Planned) -> _Planned | None:
        """The plan with one more sample, while `resample` allows: before a node falls back to an extract
        of its input, a fresh sample gets a chance to say something the screen accepts."""
        tries = sum(sample.source.startswith("resample") for sample in plan.samples)
        if not self.config.screen or tries >= self.config.resample:
            return None
        key = node_key(self.runtime, plan.role, plan.prompt, self.sample_settings, sample=len(plan.samples))
        retry = _Sample(key=key, settings=self.sample_settings, source=f"resample:{tries + 1}")
        return msgspec.structs.replace(plan, samples=plan.samples + (retry,))

    def _standing(self, text: str, plan: _Planned, summary: str,
                  screening: _Screening) -> tuple[str, tuple[Sentence, ...], list[Span], bool]:
        """(summary, its sentences, a leaf's source spans, whether it is extractive): what the screen
        leaves of the chosen summary, or, when it leaves nothing, an extractive summary of the input."""
        if screening.kept:
            standing = " ".join(s.text for s in screening.kept) if screening.dropped else summary
            return standing, screening.kept, screening.source, False
        inputs = ([text[s.start : s.end] for s in screening.source] if plan.role == "chunk"
                  else [s.text for child in plan.children for s in child.sentences])
        fallback = extractive_summary(inputs)
        sentences, source = self._evidence(text, plan, fallback)
        return fallback, sentences, source, True

    def _compose_node(self, plan: _Planned) -> Node:
        """The root as its children's summaries, one paragraph each: every sentence is a child's sentence,
        linked to it with full support and keeping its source support and spans."""
        sentences = tuple(
            msgspec.structs.replace(sentence, support=1.0, links=(EvidenceLink(target=child.id, sentence=j,
                                                                               score=1.0),))
            for child in plan.children for j, sentence in enumerate(child.sentences))
        return Node(id=_node_id(plan), key=plan.key, height=plan.height, index=plan.index, role=plan.role,
                    adapter=None, span=plan.span, children=tuple(child.id for child in plan.children),
                    summary="\n\n".join(child.summary for child in plan.children), sentences=sentences,
                    composed=True)

    def _build_node(self, text: str, plan: _Planned, results: list[GenerationResult],
                    from_cache: bool, stats: RunStats) -> Node:
        started = time.perf_counter()
        screenings = [self._screening(text, plan, result.text) for result in results]
        chosen, rewards = self._choose(plan, results, screenings)
        summary, sentences, source, extractive = self._standing(text, plan, results[chosen].text,
                                                                screenings[chosen])
        # A greedy summary the screen refused and a sample replaced: what it said, and why not, stays too.
        dropped = screenings[chosen].dropped + (screenings[0].dropped if chosen else ())
        candidates = []
        seen = {results[chosen].text}
        for i, (sample, result) in enumerate(zip(plan.samples, results, strict=True)):
            if result.text in seen:  # an identical sample adds nothing to compare
                continue
            seen.add(result.text)
            candidates.append(Candidate(summary=result.text, sentences=screenings[i].sentences,
                                        reward=rewards[i] if rewards else None, source=sample.source))
        stats.evidence_seconds += time.perf_counter() - started
        result = results[chosen]
        return Node(
            id=_node_id(plan),
            key=plan.key,
            height=plan.height,
            index=plan.index,
            role=plan.role,
            adapter=plan.role if self.runtime.adapter_for(plan.role) else None,
            adapter_version=self.runtime.adapter_version(plan.role),
            span=plan.span,
            children=tuple(child.id for child in plan.children),
            summary=summary,
            sentences=sentences,
            source_sentences=tuple(source),
            prompt_tokens=result.prompt_tokens,
            generated_tokens=result.generated_tokens,
            truncated=any(r.truncated for r in results),
            cached=from_cache,
            reward=rewards[chosen] if rewards else None,
            candidates=tuple(candidates),
            dropped=dropped,
            extractive=extractive,
            generations=tuple(sample.key for sample in plan.samples),
        )
