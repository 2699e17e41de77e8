"""The recursion: chunk → summarize every chunk (height 0) → merge height by height until a height's
summaries fit in `root_words`, which the root then composes (Wu et al.'s top heights).

Each height is one call to `generate_batched`: nodes of a height are independent, so they share
batches; only heights run in sequence.
"""

import hashlib
import time
from collections.abc import Callable, Sequence

import msgspec

from recursum.schemas.events import HeightDone, HeightStarted
from recursum.schemas.tree import Candidate, DroppedSentence, EvidenceLink, Node, Role, Sentence, Span
from recursum.service.engine.models.reward import score_pairs
from recursum.service.engine.models.runtime import ModelRuntime
from recursum.service.engine.pipeline.chunking import chunk_document
from recursum.service.engine.pipeline.document import Document
from recursum.service.engine.pipeline.events import NodeDone, ProgressEvent
from recursum.service.engine.pipeline.evidence import EvidenceScorer, leaf_evidence, merge_evidence
from recursum.service.engine.pipeline.generate import generate_batched
from recursum.service.engine.pipeline.node_cache import MemoryNodeCache, NodeCache
from recursum.service.engine.pipeline.prompts import PromptInput, chunk_prompt, merge_prompt
from recursum.service.engine.pipeline.results import (
    GenerationRequest,
    GenerationResult,
    GenerationSettings,
    RunStats,
)
from recursum.service.engine.pipeline.screen import extractive_summary, screen
from recursum.service.engine.pipeline.sentences import sentence_spans
from recursum.service.engine.pipeline.tokens import count_tokens_batch, encoding
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


def node_key(runtime: ModelRuntime, adapter: str | None, prompt: PromptInput,
             settings: GenerationSettings, sample: int = 0) -> str:
    """Content address: same model, adapter, prompt inputs and settings give the same node.

    `sample` tells apart best-of-n's samples, which share settings so that they share batches.
    """
    adapter_version = runtime.info.adapters.get(adapter) if adapter else None
    parts = [runtime.info.fingerprint, runtime.info.quantization, runtime.info.dtype, adapter,
             adapter_version, prompt, settings]
    return hashlib.sha256(msgspec.json.encode(parts + [sample] if sample else parts)).hexdigest()


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


def _node_id(plan: _Planned) -> str:
    """The content address plus the node's place: unique in a tree even where a book repeats itself."""
    return hashlib.sha256(f"{plan.key}:{plan.span.start}:{plan.span.end}".encode()).hexdigest()[:32]


class TreeBuild:
    """One document's recursion, advanced a height at a time so builds can share batches.

    A height goes: plan its nodes, take what the cache has (`requests` lists the rest), accept
    generated results as they arrive, then `advance` to the next height until one root remains.
    """

    def __init__(self, summarizer: "Summarizer", document: Document,
                 emit: Callable[[ProgressEvent], None], stats: RunStats) -> None:
        self.summarizer = summarizer
        self.document = document
        self.emit = emit
        self.stats = stats
        self.chunks = chunk_document(document.text, summarizer.config.chunk_tokens)
        self.heights: list[list[Node]] = []
        self._start_height(summarizer._plan_leaves(document.text, self.chunks))

    @property
    def done(self) -> bool:
        return bool(self.heights) and len(self.heights[-1]) == 1 and not self._plans

    def _start_height(self, planned: list[_Planned]) -> None:
        self._plans = planned
        self._waiting: dict[str, list[_Planned]] = {}  # generation key -> the nodes that need it
        for plan in planned:
            for sample in plan.samples:
                self._waiting.setdefault(sample.key, []).append(plan)
        self._results: dict[str, GenerationResult] = {}
        self._from_cache: set[str] = set()
        self._nodes: dict[int, Node] = {}
        cache = self.summarizer.cache
        cached = [hit for key in self._waiting if (hit := cache.get(key)) is not None]
        self.stats.cache_hits += len(cached)
        self.stats.cache_misses += len(self._waiting) - len(cached)
        self.emit(HeightStarted(height=planned[0].height, nodes=len(planned), cached=len(cached)))
        for result in cached:
            self.accept(result, from_cache=True)
        for plan in planned:
            if not plan.samples:  # a composition: nothing to generate
                self._finish(plan, self.summarizer._compose_node(plan))

    @property
    def requests(self) -> list[tuple[GenerationSettings, GenerationRequest]]:
        """The generations the current height still needs, with the settings each runs under."""
        adapter_for = self.summarizer.runtime.adapter_for
        needed: dict[str, tuple[GenerationSettings, GenerationRequest]] = {}
        for plan in self._plans:
            if plan.index in self._nodes:
                continue
            for sample in plan.samples:
                if sample.key not in self._results:
                    needed[sample.key] = (sample.settings, GenerationRequest(
                        key=sample.key, adapter=adapter_for(plan.role), prompt=plan.prompt))
        return list(needed.values())

    def pending_keys(self) -> frozenset[str]:
        """Content addresses of the generations the current height still waits for."""
        return frozenset(request.key for _, request in self.requests)

    def accept(self, result: GenerationResult, from_cache: bool = False) -> None:
        """Take a generation; a node is built once all its samples are in."""
        plans = self._waiting.get(result.key, ())
        if plans:
            self._results[result.key] = result
            if from_cache:
                self._from_cache.add(result.key)
        for plan in plans:
            if plan.index in self._nodes or any(s.key not in self._results for s in plan.samples):
                continue
            results = [self._results[sample.key] for sample in plan.samples]
            cached = all(sample.key in self._from_cache for sample in plan.samples)
            node = self.summarizer._build_node(self.document.text, plan, results, cached, self.stats)
            if node.extractive and (retry := self.summarizer._with_resample(plan)) is not None:
                self._resample(retry)
                continue
            self._finish(plan, node)

    def _resample(self, retry: _Planned) -> None:
        """Wait for the retry's new sample: from the cache, or generated by the next pass of `run_round`."""
        self._plans[retry.index] = retry
        key = retry.samples[-1].key
        self._waiting.setdefault(key, []).append(retry)
        if (hit := self.summarizer.cache.get(key)) is None:
            self.stats.cache_misses += 1
        else:
            self.stats.cache_hits += 1
            self.accept(hit, from_cache=True)

    def _finish(self, plan: _Planned, node: Node) -> None:
        self._nodes[plan.index] = node
        self.emit(NodeDone(node=node))

    def advance(self) -> None:
        """Close the finished height and plan the next; raises `Cancelled` if nodes are missing."""
        height = len(self.heights)
        total = len(self._plans)
        if len(self._nodes) < total:
            raise Cancelled(f"stopped at height {height} with {len(self._nodes)}/{total} nodes")
        self.emit(HeightDone(height=height, nodes=total))
        level = [self._nodes[index] for index in range(total)]
        self.heights.append(level)
        if len(level) > 1:
            self._start_height(self.summarizer._plan_above(level))
        else:
            self._plans = []

    @property
    def root(self) -> Node:
        return self.heights[-1][0]

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


def run_round(builds: Sequence[TreeBuild], wanted: Callable[[str], bool] | None = None,
              ) -> dict[int, Exception]:
    """Generate the current height of every build in shared batches; a node the screen left nothing of
    asks for a resample, which a further pass generates (`TreeConfig.resample` passes at most).

    Requests under the same generation settings share batches (a generation several builds
    need runs once); `wanted` withdraws keys of cancelled builds at the next batch. A batch that fails,
    or a result a build cannot take, fails only the builds concerned: returned as {index in `builds`:
    error}, and left out of later passes; the others go on.
    """
    failed: dict[int, Exception] = {}
    for _ in range(1 + max(build.summarizer.config.resample for build in builds)):
        live = [(index, build) for index, build in enumerate(builds) if index not in failed]
        if not any(build.requests for _, build in live):
            break
        _generate_pass(live, wanted, failed)
    return failed


def _generate_pass(builds: Sequence[tuple[int, TreeBuild]], wanted: Callable[[str], bool] | None,
                   failed: dict[int, Exception]) -> None:
    pending: dict[tuple[GenerationSettings, int], dict[str, GenerationRequest]] = {}
    groups: dict[tuple[GenerationSettings, int], list[tuple[int, TreeBuild]]] = {}
    for index, build in builds:
        for settings, request in build.requests:
            group = (settings, build.summarizer.config.batch_size)
            pending.setdefault(group, {})[request.key] = request
            if (index, build) not in groups.setdefault(group, []):
                groups[group].append((index, build))

    def still_wanted(key: str) -> bool:  # asked at every decoding step: cheap unless something failed
        if wanted is not None and not wanted(key):
            return False
        return not failed or any(key in build.pending_keys()
                                 for index, build in builds if index not in failed)

    for (settings, batch_size), members in groups.items():
        requests = list(pending[(settings, batch_size)].values())
        first = members[0][1]

        def fail(keys: list[str], error: Exception, members: list[tuple[int, TreeBuild]] = members) -> None:
            for index, build in members:
                if index not in failed and not build.pending_keys().isdisjoint(keys):
                    failed[index] = error

        def deliver(result: GenerationResult, members: list[tuple[int, TreeBuild]] = members,
                    cache: NodeCache = first.summarizer.cache) -> None:
            try:
                cache.put(result)
            except Exception as error:  # the builds that wanted this result fail (or are released), alone
                fail([result.key], error, members)
                return
            for index, build in members:
                if index in failed:
                    continue
                try:
                    build.accept(result)
                except Exception as error:  # e.g. its node could not be stored: this build alone fails
                    failed[index] = error

        generate_batched(first.summarizer.runtime, requests, settings, batch_size, first.stats.generation,
                         on_result=deliver, wanted=still_wanted, on_failure=fail)


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
        """Chunk the document and take cached leaves; generation happens in `run_round`."""
        return TreeBuild(self, document, on_event or (lambda event: None),
                         stats if stats is not None else RunStats())

    def summarize(
        self,
        document: Document,
        on_event: Callable[[ProgressEvent], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        stats: RunStats | None = None,
    ) -> Tree:
        """Build the whole tree; raises `Cancelled` if `should_stop` fires first."""
        started = time.perf_counter()
        build = self.start(document, on_event, stats)
        wanted = None if should_stop is None else (lambda key: not should_stop())
        while not build.done:
            if failures := run_round([build], wanted):
                raise failures[0]
            build.advance()
        build.stats.total_seconds += time.perf_counter() - started
        return build.tree()

    def _plan(self, height: int, index: int, role: Role, span: Span,
              children: tuple[Node, ...], prompt: PromptInput) -> _Planned:
        adapter = self.runtime.adapter_for(role)
        samples = (_Sample(key=node_key(self.runtime, adapter, prompt, self.settings), settings=self.settings,
                           source="greedy"),) + tuple(
            _Sample(key=node_key(self.runtime, adapter, prompt, self.sample_settings, sample=i),
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
            ))
            for chunk in chunks
        ]

    def _plan_above(self, level: list[Node]) -> list[_Planned]:
        """The next height: the composed root once the level fits in `root_words`, else merges."""
        words = sum(len(node.summary.split()) for node in level)
        if words > self.config.root_words:
            return self._plan_merges(level)
        material = ["composed", [node.key for node in level]]
        return [_Planned(height=level[0].height + 1, index=0, role="merge",
                         span=Span(level[0].span.start, level[-1].span.end), children=tuple(level),
                         prompt=merge_prompt([node.summary for node in level]),
                         key=hashlib.sha256(msgspec.json.encode(material)).hexdigest(), samples=())]

    def _plan_merges(self, level: list[Node]) -> list[_Planned]:
        height = level[0].height + 1
        groups = merge_groups(level, self.config.merge_tokens, self.config.max_children)
        return [
            self._plan(height, index, "merge", Span(group[0].span.start, group[-1].span.end),
                       tuple(group), merge_prompt([child.summary for child in group]))
            for index, group in enumerate(groups)
        ]

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
        key = node_key(self.runtime, self.runtime.adapter_for(plan.role), plan.prompt, self.sample_settings,
                       sample=len(plan.samples))
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
            adapter=self.runtime.adapter_for(plan.role),
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
