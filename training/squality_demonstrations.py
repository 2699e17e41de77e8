"""SQuALITY's human plot summaries (CC BY 4.0, `../shared/data/references/squality/`) as demonstrations
of the chunk role.

A plot summary covers a whole story, while the chunk role sees ~600 tokens of it. Each sentence of each
of a story's 4 human plot summaries is placed with the chunk holding its closest source sentence (the
evidence scorer's support); a chunk's demonstration is the summary's sentences placed with it, in the
summary's order. That is what a person who read the story says happened in that part, in the form the
screen accepts: a sentence placed with too little support, one about the text (meta-commentary) or one
naming someone the chunk never names (the writer knew the whole story) is left out.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from recursum.service.engine.pipeline.chunking import chunk_document
from recursum.service.engine.pipeline.commentary import is_meta_commentary
from recursum.service.engine.pipeline.evidence import EvidenceScorer
from recursum.service.engine.pipeline.roster import invented_names, vocabulary
from recursum.service.engine.pipeline.sentences import sentence_spans, split_sentences
from recursum.training.datasets import Demonstration
from recursum.training.squality import SourceDataMissing

DEFAULT_REFERENCES = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "references" / "squality"
)
PLOT_QUESTION = 1  # "What is the plot of the story?"


class PlacementConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    chunk_tokens: Annotated[int, Meta(ge=32)] = 600  # the service's default chunk budget
    min_support: Annotated[float, Meta(ge=0.0, le=1.0)] = 0.35  # below it a sentence is too abstract
    max_sentences: Annotated[int, Meta(ge=1)] = 5  # per demonstration; the chunk prompt asks for 2 to 4


PLACEMENT = PlacementConfig()


class _Response(msgspec.Struct):
    worker_id: str
    response_text: str


class _Question(msgspec.Struct):
    question_number: int
    responses: list[_Response]


class _Metadata(msgspec.Struct):
    passage_id: str


class _Story(msgspec.Struct):
    metadata: _Metadata
    document: str
    questions: list[_Question]


def read_stories(path: Path) -> list[_Story]:
    """The stories of one SQuALITY split file (`train.jsonl`)."""
    if not path.is_file():
        raise SourceDataMissing(f"no SQuALITY split at {path}: pass --references with train.jsonl in it")
    decoder = msgspec.json.Decoder(_Story)
    return [decoder.decode(line) for line in path.read_bytes().splitlines() if line.strip()]


def chunk_demonstrations(story: _Story, scorer: EvidenceScorer,
                         config: PlacementConfig = PLACEMENT) -> Iterator[Demonstration]:
    """One demonstration per (chunk, human plot summary) that has sentences placed with the chunk."""
    text = story.document
    chunks = chunk_document(text, config.chunk_tokens)
    source = sentence_spans(text)
    owner = [next(c.index for c in chunks if c.span.start <= span.start < c.span.end) for span in source]
    vocabularies = [vocabulary(text[c.span.start : c.span.end]) for c in chunks]
    plot = next(q for q in story.questions if q.question_number == PLOT_QUESTION)
    for response in plot.responses:
        claims = split_sentences(response.response_text)
        placed: dict[int, list[str]] = {}
        ranked = scorer.support(claims, [text[s.start : s.end] for s in source], 1)
        for claim, best in zip(claims, ranked, strict=True):
            if not best or best[0][1] < config.min_support or is_meta_commentary(claim):
                continue
            chunk = owner[best[0][0]]
            if not invented_names(claim, vocabularies[chunk]):
                placed.setdefault(chunk, []).append(" ".join(claim.split()))
        for chunk, sentences in sorted(placed.items()):
            span = chunks[chunk].span
            yield Demonstration(task="chunk", height=0, input=text[span.start : span.end],
                                output=" ".join(sentences[: config.max_sentences]),
                                group=f"squality:{story.metadata.passage_id}",
                                source=f"squality:reference:{response.worker_id}")
