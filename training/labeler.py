"""A SIMULATED labeler: a scripted stand-in for human evaluators, for demos, tests and benchmarks.

No person is involved. It prefers the candidate whose sentences the source supports (the engine's
evidence scores) and penalizes what it knows was planted (false sentences), padding (being longer
than the other candidate by more than a margin) and copying (long verbatim runs of the source).
Logistic noise on the score difference (the difference of two Gumbels, as in Bradley-Terry) makes
it an imperfect rater; a held-out labeler for evaluation is one with another seed or noise.
"""

import math
import random
from collections.abc import Collection
from dataclasses import dataclass

from recursum.service.engine.pipeline.evidence import EvidenceScorer
from recursum.service.engine.pipeline.sentences import split_sentences
from recursum.service.engine.pipeline.tokens import count_tokens
from recursum.training.datasets import Comparison, Preference, now


@dataclass(frozen=True)
class LabelerConfig:
    """How the simulated labeler weighs a candidate; `noise=0` makes it deterministic."""

    seed: int = 0
    noise: float = 0.0  # scale of the logistic noise added to the score difference
    planted_penalty: float = 1.0  # per share of the candidate's sentences that were planted
    padding_margin: float = 0.25  # tolerated extra length over the other candidate (a share)
    padding_penalty: float = 0.5  # per share of length beyond that margin
    copy_ngram: int = 12  # words in a run that counts as copied
    copy_penalty: float = 0.5  # per share of the candidate's words inside copied runs
    tie_margin: float = 0.0  # score differences at or below this are ties
    confidence_scale: float = 0.1  # difference at which confidence reaches tanh(1) ~ 0.76

    def __post_init__(self) -> None:
        if self.noise < 0:
            raise ValueError(f"noise must be >= 0, got {self.noise}")
        if self.copy_ngram < 1:
            raise ValueError(f"copy_ngram must be >= 1, got {self.copy_ngram}")
        if self.confidence_scale <= 0:
            raise ValueError(f"confidence_scale must be > 0, got {self.confidence_scale}")

    @property
    def evaluator(self) -> str:
        """The `evaluator` written into its comparisons: always marked simulated."""
        return f"simulated:seed={self.seed},noise={self.noise}"


class SimulatedLabeler:
    """Labels pairs of summaries like a (scripted, simulated) evaluator would; see the module doc."""

    def __init__(self, scorer: EvidenceScorer, config: LabelerConfig = LabelerConfig()) -> None:
        self.scorer = scorer
        self.config = config
        self._random = random.Random(config.seed)

    def score(self, candidate: str, other: str, source: str, planted: Collection[str] = ()) -> float:
        """Mean source support of `candidate`'s sentences minus the planted, padding and copy penalties."""
        config = self.config
        claims = split_sentences(candidate)
        if not claims:
            return 0.0
        ranked = self.scorer.support(claims, split_sentences(source), top_k=1)
        support = sum(best[0][1] if best else 0.0 for best in ranked) / len(claims)
        planted_keys = {_key(sentence) for sentence in planted}
        planted_share = sum(_key(claim) in planted_keys for claim in claims) / len(claims)
        length, other_length = count_tokens(candidate), max(count_tokens(other), 1)
        padding = max(0.0, length / other_length - 1.0 - config.padding_margin)
        return (
            support
            - config.planted_penalty * planted_share
            - config.padding_penalty * padding
            - config.copy_penalty * copied_share(candidate, source, config.copy_ngram)
        )

    def label(
        self,
        *,
        id: str,
        task: str,
        height: int | None,
        input: str,
        group: str,
        candidates: tuple[str, str],
        source: str | None = None,
        planted: Collection[str] = (),
    ) -> Comparison:
        """A `Comparison` of two candidates for `input`, judged against `source` (the raw text the
        node covers; `input` itself at height 0). `planted` holds the false sentences it planted."""
        source = input if source is None else source
        first, second = candidates
        difference = self.score(first, second, source, planted) - self.score(second, first, source, planted)
        difference += self._noise()
        preferred: Preference = (
            "tie" if abs(difference) <= self.config.tie_margin else 0 if difference > 0 else 1
        )
        return Comparison(
            id=id,
            task=task,
            height=height,
            input=input,
            group=group,
            candidates=candidates,
            preferred=preferred,
            confidence=math.tanh(abs(difference) / self.config.confidence_scale),
            evaluator=self.config.evaluator,
            created=now(),
        )

    def _noise(self) -> float:
        if self.config.noise == 0:
            return 0.0
        u = min(max(self._random.random(), 1e-12), 1 - 1e-12)
        return self.config.noise * math.log(u / (1 - u))  # logistic = Gumbel - Gumbel


def copied_share(candidate: str, source: str, n: int) -> float:
    """Share of `candidate`'s words inside runs of >= `n` words that appear verbatim in `source`."""
    words = _words(candidate)
    if len(words) < n:
        return 0.0
    source_words = _words(source)
    source_ngrams = {tuple(source_words[i : i + n]) for i in range(len(source_words) - n + 1)}
    copied = [False] * len(words)
    for i in range(len(words) - n + 1):
        if tuple(words[i : i + n]) in source_ngrams:
            copied[i : i + n] = [True] * n
    return sum(copied) / len(words)


def _words(text: str) -> list[str]:
    return [word.strip(".,;:!?\"'()“”‘’").lower() for word in text.split()]


def _key(sentence: str) -> str:
    return " ".join(sentence.split()).lower()

