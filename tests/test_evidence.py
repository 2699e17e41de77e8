"""Evidence: summary sentences link to the sentences that support them, down to the source text."""

import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from recursum.schemas.tree import SOURCE, Node, Sentence, Span
from recursum.service.engine.pipeline.entities import known_names, sentence_entities
from recursum.service.engine.pipeline.evidence import (
    EvidenceScorer,
    SupportConfig,
    leaf_evidence,
    load_embedder,
    merge_evidence,
)
from recursum.service.engine.pipeline.screen import screen
from recursum.service.engine.pipeline.sentences import sentence_spans

THRESHOLD = 0.25

# Alice's voyage and Bob's baking lie more than `entity_window` sentences apart, so neither
# name is "nearby" the other's sentence.
STORY = [
    "Alice rowed the little boat across the cold lake at dawn.",
    "The water was grey and still.",
    "Mist hung over the reeds.",
    "A heron watched from the shore.",
    "The village slept behind the hill.",
    "Smoke rose from a single chimney.",
    "Bob baked twelve loaves of bread for the harvest festival.",
]
DOCUMENT = " ".join(STORY)


@pytest.fixture(scope="module")
def embedder():
    return load_embedder()


@pytest.fixture(scope="module")
def scorer(embedder):
    return EvidenceScorer(embedder=embedder)


def top(scorer: EvidenceScorer, claim: str, candidates: list[str] = STORY) -> tuple[int, float]:
    return scorer.support([claim], candidates, top_k=1)[0][0]


def test_supported_claim_links_to_its_source_sentence_above_unrelated_ones(scorer):
    ranked = scorer.support(["At dawn Alice rowed across the lake."], STORY, top_k=len(STORY))[0]
    assert ranked[0][0] == 0
    scores = dict(ranked)
    assert scores[0] > scores[6] + 0.2
    assert all(0.0 <= score <= 1.0 for score in scores.values())


def test_claim_naming_someone_absent_from_its_support_scores_lower(scorer):
    right = top(scorer, "Alice rowed the boat across the lake.")
    swapped = top(scorer, "Bob rowed the boat across the lake.")
    assert swapped[1] < right[1] - 0.1


def test_negated_claim_scores_lower_than_the_original(scorer):
    original = top(scorer, "Alice rowed the boat across the lake.")
    negated = top(scorer, "Alice did not row the boat across the lake.")
    assert negated[1] < original[1] - 0.1


def test_claims_without_candidates_get_no_links(scorer):
    assert scorer.support(["Alice rowed."], [], top_k=3) == [[]]
    assert scorer.support([], STORY, top_k=3) == []


def test_each_sentence_is_embedded_once_across_calls(embedder):
    class CountingEmbedder:
        def __init__(self) -> None:
            self.encoded: list[str] = []

        def encode(self, texts, **kwargs):
            self.encoded.extend(texts)
            return embedder.encode(texts, **kwargs)

    counting = CountingEmbedder()
    scorer = EvidenceScorer(embedder=counting)
    scorer.support(["Alice rowed."], STORY, top_k=1)
    scorer.support(["Bob baked.", "Alice rowed."], STORY, top_k=1)
    assert sorted(counting.encoded) == sorted({*STORY, "Alice rowed.", "Bob baked."})


def test_names_are_mid_sentence_capitals_not_headings_or_pronouns():
    sentences = ["The Ship To The Lake", "Then Alice met Bob.", "Bob sailed the ship to the lake."]
    names = known_names(sentences)
    assert names == {"Alice", "Bob"}
    assert sentence_entities("Bob's ship left.", names) == {"Bob"}


def test_leaf_source_spans_point_at_the_exact_supporting_text(scorer):
    spans = sentence_spans(DOCUMENT)
    (sentence,) = leaf_evidence(scorer, "Bob baked bread.", DOCUMENT, spans, 1, THRESHOLD)
    assert [(link.target, link.sentence) for link in sentence.links] == [(SOURCE, 6)]
    (span,) = sentence.source_spans
    assert DOCUMENT[span.start : span.end] == STORY[6]
    assert sentence.source_support == sentence.support
    assert not sentence.unsupported


def test_leaf_merges_consecutive_supporting_sentences_into_one_span(scorer):
    spans = sentence_spans(DOCUMENT)
    (sentence,) = leaf_evidence(
        scorer, "Alice rowed across the grey lake.", DOCUMENT, spans, 2, THRESHOLD
    )
    assert sorted(link.sentence for link in sentence.links) == [0, 1]
    assert sentence.source_spans == (Span(spans[0].start, spans[1].end),)


def test_leaf_flags_a_claim_the_chunk_never_makes(scorer):
    spans = sentence_spans(DOCUMENT)
    summary = "The spaceship landed on Mars."
    (sentence,) = leaf_evidence(scorer, summary, DOCUMENT, spans, 3, THRESHOLD)
    assert sentence.unsupported


def _child(node_id: str, index: int, sentences: list[Sentence]) -> Node:
    return Node(
        id=node_id,
        key=node_id,
        height=0,
        index=index,
        role="chunk",
        adapter=None,
        span=Span(0, len(DOCUMENT)),
        children=(),
        summary=" ".join(s.text for s in sentences),
        sentences=tuple(sentences),
    )


def _sentence(text: str, spans: tuple[Span, ...], source_support: float) -> Sentence:
    return Sentence(
        text=text,
        support=source_support,
        source_support=source_support,
        unsupported=source_support < THRESHOLD,
        source_spans=spans,
    )


CHILDREN = [
    _child("a", 0, [_sentence("Alice rowed a boat across the lake.", (Span(0, 57),), 0.9)]),
    _child("b", 1, [_sentence("Bob baked bread for a festival.", (Span(180, 240),), 0.3)]),
]


def test_merge_links_child_sentences_and_composes_to_their_source_spans(scorer):
    (sentence,) = merge_evidence(scorer, "Alice crossed the lake by boat.", CHILDREN, 1, THRESHOLD)
    assert [(link.target, link.sentence) for link in sentence.links] == [("a", 0)]
    assert sentence.source_spans == (Span(0, 57),)


def test_merge_source_support_is_the_weakest_step_of_the_chain(scorer):
    (sentence,) = merge_evidence(scorer, "Bob baked bread for a festival.", CHILDREN, 1, THRESHOLD)
    assert sentence.support > 0.3
    assert sentence.source_support == 0.3


def test_empty_summary_gives_no_sentences(scorer):
    assert leaf_evidence(scorer, "", DOCUMENT, sentence_spans(DOCUMENT), 3, THRESHOLD) == ()
    assert merge_evidence(scorer, "  ", CHILDREN, 3, THRESHOLD) == ()


def test_a_merge_repeating_a_wrong_child_is_dropped_though_the_child_supports_it(scorer):
    wrong = [_child("w", 0, [_sentence("Alice flew a spaceship to the moon.", (Span(0, 57),), 0.05)])]
    (sentence,) = merge_evidence(scorer, "Alice flew a spaceship to the moon.", wrong, 1, THRESHOLD)
    assert sentence.support > 0.9, "against its child alone the claim looks supported"
    kept, dropped = screen([sentence], DOCUMENT, THRESHOLD)
    assert not kept and dropped[0].reason.startswith("unsupported by the source")


class _CountingEmbedder:
    """Stands in for the sentence model: a fixed vector per text, fast enough to race."""

    def encode(self, texts, **kwargs):
        return np.array([[float(len(text)), 1.0] for text in texts], dtype=np.float32)


def test_the_embedding_cache_survives_threads_filling_and_evicting_it_at_once():
    # CPython 3.11's GIL happens to make each of these dict operations atomic; a free-threaded build does
    # not, and there the unlocked cache raised KeyError for a text evicted between its check and its read.
    scorer = EvidenceScorer(SupportConfig(cache_size=8), embedder=_CountingEmbedder())

    def embed_many(worker: int) -> None:
        for round_ in range(300):
            texts = [f"sentence {worker} {round_} {i}" for i in range(6)] + ["shared"]
            assert scorer.embed(texts).shape == (7, 2)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch between any two bytecodes: the race shows at once
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(embed_many, range(8)))
    finally:
        sys.setswitchinterval(interval)
