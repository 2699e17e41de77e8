"""The qa report: a question about a node's source, answered by the helper with cited spans.

Answers go through one `generate_batched` call, cached by content address like summary nodes, so the same
prompt is never generated twice.
"""

import re

import numpy as np

from recursum.schemas.reports import Citation, QaAnswer, QaRequest
from recursum.schemas.tree import Span
from recursum.service.engine.helpers.tasks import ReportTask
from recursum.service.engine.models.runtime import ModelRuntime
from recursum.service.engine.pipeline.evidence import EvidenceScorer
from recursum.service.engine.pipeline.generate import generate_batched
from recursum.service.engine.pipeline.node_cache import MemoryNodeCache, NodeCache
from recursum.service.engine.pipeline.prompts import qa_prompt
from recursum.service.engine.pipeline.recursion import node_key
from recursum.service.engine.pipeline.results import GenerationRequest, GenerationSettings, GenerationStats
from recursum.service.engine.pipeline.sentences import sentence_spans

# No repetition controls: transformers applies them to the prompt too, so they forbade the very words a
# helper must repeat (the passages it cites) and garbled its lines; the token cap bounds its output.
HELPER_SETTINGS = GenerationSettings(max_new_tokens=160, repetition_penalty=1.0, no_repeat_ngram_size=0)
QA_PASSAGES = 6  # source sentences retrieved for a question
_CITED = re.compile(r"\[(\d{1,2})\]")


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
        request = GenerationRequest(key=node_key(runtime, "helper", prompt, HELPER_SETTINGS), adapter=adapter,
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
