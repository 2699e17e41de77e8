"""Helper reports about one node: evidence, critique, qa and compare, built for a batch of nodes at once.

`evidence` and `compare` only read scores (compare embeds, no generation). `critique` and `qa` need the
helper model (role `helper`: the helper adapter, or the base model with the helper prompt). A critique's
sentences are judged in one batch of forward passes for every critique of the batch (`verify`); qa answers
go through one `generate_batched` call, cached by content address like summary nodes, so the same prompt
is never generated twice.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
import numpy as np

from recursum.schemas.reports import (
    AlignedPair,
    Citation,
    CompareReport,
    CompareRequest,
    CompareSide,
    CritiqueReport,
    CritiqueRequest,
    EvidenceReport,
    EvidenceRequest,
    QaAnswer,
    QaRequest,
    ReportBody,
    ReportCreate,
    SentenceEvidence,
    SummaryRef,
    SupportingSentence,
)
from recursum.schemas.tree import SOURCE, Candidate, EvidenceLink, Node, Sentence, Span
from recursum.service.engine.errors import ConfigError
from recursum.service.engine.helpers.critique import MaterialSentence, combine, critique_parts, evidence_items
from recursum.service.engine.helpers.verify import choose, summary_distributions, verdict_items
from recursum.service.engine.models.runtime import ModelRuntime
from recursum.service.engine.pipeline.evidence import EvidenceScorer, leaf_evidence, merge_evidence
from recursum.service.engine.pipeline.generate import (
    GenerationRequest,
    GenerationSettings,
    GenerationStats,
    generate_batched,
)
from recursum.service.engine.pipeline.node_cache import MemoryNodeCache, NodeCache
from recursum.service.engine.pipeline.prompts import qa_prompt
from recursum.service.engine.pipeline.recursion import node_key
from recursum.service.engine.pipeline.sentences import sentence_spans

# No repetition controls: transformers applies them to the prompt too, so they forbade the very words a
# helper must repeat (the passages it cites) and garbled its lines; the token cap bounds its output.
HELPER_SETTINGS = GenerationSettings(max_new_tokens=160, repetition_penalty=1.0, no_repeat_ngram_size=0)
HELPER_BATCH = 8
QA_PASSAGES = 6  # source sentences retrieved for a question
ALIGN_SIMILARITY = 0.6  # cosine at which two sentences of compared summaries say the same thing
_CITED = re.compile(r"\[(\d{1,2})\]")


class InvalidReportRequest(ConfigError):
    """Raised when a report request cannot apply to its node (say, a candidate index it does not have)."""


@dataclass(frozen=True)
class ReportTask:
    """One report to build: the node, its children (empty for a leaf), the document text and the
    tree's evidence settings."""

    key: str
    request: ReportCreate
    node: Node
    children: tuple[Node, ...]
    text: str
    threshold: float = 0.25
    links: int = 3


def node_material(node: Node, children: Sequence[Node], text: str) -> list[MaterialSentence]:
    """What the node was written from, in reading order: its children's sentences, or a leaf's source."""
    if node.height == 0:
        return [MaterialSentence(EvidenceLink(target=SOURCE, sentence=j, score=0.0), text[s.start : s.end],
                                 (s,)) for j, s in enumerate(node.source_sentences)]
    return [MaterialSentence(EvidenceLink(target=child.id, sentence=j, score=0.0), s.text, s.source_spans)
            for child in children for j, s in enumerate(child.sentences)]


def evidence_report(node: Node, children: Sequence[Node], text: str) -> EvidenceReport:
    """The node's stored evidence with every link resolved to its sentence's text and source spans."""
    material = {(m.link.target, m.link.sentence): m for m in node_material(node, children, text)}
    sentences = []
    for i, s in enumerate(node.sentences):
        supports = tuple(
            SupportingSentence(target=link.target, sentence=link.sentence, score=link.score, text=m.text,
                               source_spans=m.spans)
            for link in s.links if (m := material.get((link.target, link.sentence))) is not None
        )
        sentences.append(SentenceEvidence(index=i, text=s.text, support=s.support,
                                          source_support=s.source_support, unsupported=s.unsupported,
                                          supports=supports, source_spans=s.source_spans))
    return EvidenceReport(summary=node.summary, sentences=tuple(sentences),
                          unsupported=sum(s.unsupported for s in node.sentences))


def check_request(node: Node, request: ReportCreate) -> None:
    """Refuse what cannot apply to `node` before anything is stored: a candidate it lacks, a pair of one."""
    match request:
        case CompareRequest(a=a, b=b):
            refs = [a, b]
            if a == b:
                raise InvalidReportRequest("compare needs two different summaries (a and b are the same)")
        case CritiqueRequest(summary=summary) | EvidenceRequest(summary=summary):
            refs = [summary]
        case _:
            refs = []
    for ref in refs:
        if isinstance(ref, int) and ref >= len(node.candidates):
            raise InvalidReportRequest(
                f"node {node.id} has {len(node.candidates)} candidates: use -1 for its chosen summary"
                + (f", 0..{len(node.candidates) - 1} for a candidate" if node.candidates else "")
                + (", or pass a summary text" if isinstance(request, CompareRequest) else ""))


def summary_view(node: Node, index: int) -> Node:
    """The node as if candidate `index` (-1: the chosen summary) had been chosen."""
    if index == -1:
        return node
    candidate = node.candidates[index]
    return msgspec.structs.replace(node, summary=candidate.summary, sentences=candidate.sentences,
                                   reward=candidate.reward)


def _side(scorer: EvidenceScorer, task: ReportTask, ref: SummaryRef) -> CompareSide:
    node = task.node
    if isinstance(ref, str):
        if node.height == 0:
            sentences = leaf_evidence(scorer, ref, task.text, node.source_sentences, task.links,
                                      task.threshold)
        else:
            sentences = merge_evidence(scorer, ref, task.children, task.links, task.threshold)
        label, summary, reward = "request", ref, None
    elif ref == -1:
        label, summary, sentences, reward = "chosen", node.summary, node.sentences, node.reward
    else:
        candidate: Candidate = node.candidates[ref]
        label, summary, sentences, reward = (f"candidate:{ref}", candidate.summary, candidate.sentences,
                                             candidate.reward)
    mean = float(np.mean([s.support for s in sentences])) if sentences else 0.0
    return CompareSide(label=label, summary=summary, sentences=tuple(sentences), mean_support=round(mean, 4),
                       unsupported=sum(s.unsupported for s in sentences), reward=reward)


def align(scorer: EvidenceScorer, a: Sequence[Sentence], b: Sequence[Sentence]) -> tuple[AlignedPair, ...]:
    """One-to-one pairs of sentences that say the same thing (greedy on cosine), and the claims only one
    side makes, in a's reading order with b-only sentences after the pair they follow."""
    if not a or not b:
        return tuple([AlignedPair(a=i, b=None, similarity=0.0) for i in range(len(a))]
                     + [AlignedPair(a=None, b=j, similarity=0.0) for j in range(len(b))])
    vectors = scorer.embed([s.text for s in (*a, *b)])
    similarity = vectors[: len(a)] @ vectors[len(a) :].T  # (a sentences, b sentences)
    pairs: dict[int, tuple[int, float]] = {}
    taken: set[int] = set()
    for flat in np.argsort(-similarity, axis=None, kind="stable"):
        i, j = divmod(int(flat), len(b))
        if similarity[i, j] < ALIGN_SIMILARITY:
            break
        if i not in pairs and j not in taken:
            pairs[i] = (j, float(similarity[i, j]))
            taken.add(j)
    rows: list[tuple[tuple[int, int], AlignedPair]] = []
    for i in range(len(a)):
        j, score = pairs.get(i, (None, 0.0))
        rows.append(((i, -1), AlignedPair(a=i, b=j, similarity=round(score, 4))))
    for j in range(len(b)):
        if j not in taken:
            before = max((i for i, (paired, _) in pairs.items() if paired < j), default=-1)
            rows.append(((before, j), AlignedPair(a=None, b=j, similarity=0.0)))
    return tuple(pair for _, pair in sorted(rows, key=lambda row: row[0]))


def compare_report(scorer: EvidenceScorer, task: ReportTask) -> CompareReport:
    request = task.request
    assert isinstance(request, CompareRequest)
    a, b = _side(scorer, task, request.a), _side(scorer, task, request.b)
    return CompareReport(a=a, b=b, aligned=align(scorer, a.sentences, b.sentences))


def qa_passages(scorer: EvidenceScorer, task: ReportTask, question: str) -> list[tuple[int, int]]:
    """The node's source sentences closest to the question (cosine), as spans in reading order."""
    node = task.node
    spans = (list(node.source_sentences) if node.height == 0
             else sentence_spans(task.text[node.span.start : node.span.end], node.span.start))
    if not spans:
        return []
    vectors = scorer.embed([question, *(task.text[s.start : s.end] for s in spans)])
    best = np.argsort(-(vectors[1:] @ vectors[0]), kind="stable")[:QA_PASSAGES]
    return sorted((spans[k].start, spans[k].end) for k in best)


def qa_answer(scorer: EvidenceScorer, task: ReportTask, question: str, passages: list[tuple[int, int]],
              answer: str) -> QaAnswer:
    """Citations are the passages the answer names in brackets, or else the ones that support it best;
    each carries how well it supports the answer."""
    texts = [task.text[start:end] for start, end in passages]
    scores = [0.0] * len(texts)
    if answer and texts:
        for j, score in scorer.support([answer], texts, top_k=len(texts))[0]:
            scores[j] = score
    named = sorted({int(n) - 1 for n in _CITED.findall(answer) if 0 < int(n) <= len(texts)})
    cited = named or ([int(np.argmax(scores))] if answer and texts else [])
    citations = tuple(Citation(text=texts[j], span=Span(*passages[j]), score=round(scores[j], 4))
                      for j in cited)
    return QaAnswer(question=question, answer=answer, citations=citations,
                    supported=any(c.score >= task.threshold for c in citations))


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


def critique_verdicts(runtime: ModelRuntime, tasks: dict[int, ReportTask]) -> dict[int, list[str]]:
    """Each critique task's helper verdicts, one per summary sentence judged beside its closest input
    sentence; all of them in one batch (`verify.summary_distributions`)."""
    summaries, samples = [], []
    for task in tasks.values():
        assert isinstance(task.request, CritiqueRequest)
        node = summary_view(task.node, task.request.summary)
        _, sentences, closest = critique_parts(node.sentences, node_material(node, task.children, task.text))
        summaries.append((sentences, closest))
        samples.append(task.request.sample)
    distributions = summary_distributions(runtime, summaries)
    return {position: choose(d, sample, runtime.verify_calibration)
            for position, d, sample in zip(tasks, distributions, samples, strict=True)}


def qa_answers(runtime: ModelRuntime, scorer: EvidenceScorer, tasks: dict[int, ReportTask],
               cache: NodeCache | None, stats: GenerationStats | None,
               batch_size: int) -> dict[int, QaAnswer]:
    """Each qa task's answer with its citations; generations are cached by content address."""
    cache = cache if cache is not None else MemoryNodeCache()
    adapter = runtime.adapter_for("helper")
    passages: dict[int, list[tuple[int, int]]] = {}
    keys: dict[int, str] = {}
    missing: dict[str, GenerationRequest] = {}
    texts: dict[str, str] = {}
    for position, task in tasks.items():
        assert isinstance(task.request, QaRequest)
        passages[position] = qa_passages(scorer, task, task.request.question)
        prompt = qa_prompt([task.text[a:b] for a, b in passages[position]], task.request.question)
        request = GenerationRequest(key=node_key(runtime, adapter, prompt, HELPER_SETTINGS), adapter=adapter,
                                    prompt=prompt)
        keys[position] = request.key
        if (hit := cache.get(request.key)) is not None:
            texts[request.key] = hit.text
        else:
            missing[request.key] = request
    for result in generate_batched(runtime, list(missing.values()), HELPER_SETTINGS, batch_size, stats):
        cache.put(result)
        texts[result.key] = result.text
    return {position: qa_answer(scorer, task, task.request.question, passages[position],
                                texts[keys[position]]) for position, task in tasks.items()}


def critique_report(task: ReportTask, verdicts: Sequence[str],
                    scorer: EvidenceScorer | None = None) -> CritiqueReport:
    """The helper's items (its verdicts other than SUPPORTED) and the evidence's own, most severe first."""
    assert isinstance(task.request, CritiqueRequest)
    node = summary_view(task.node, task.request.summary)
    material = node_material(node, task.children, task.text)
    return CritiqueReport(items=combine(evidence_items(node, material, task.threshold, scorer),
                                        verdict_items(verdicts, node)))
