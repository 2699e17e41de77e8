"""Planted errors: false sentences whose place is known, for training helpers, for benchmarks of evaluators
and evidence, and for the service's gold items (evaluations with a known answer).

Three kinds, one per error a summarizer makes: `foreign` (a sentence from elsewhere, a claim from
nowhere), `swap` (a character's name replaced by another character's) and `negation` (polarity flipped).
"""

import random
import re
from collections import Counter
from typing import Literal

from recursum.service.engine.pipeline.entities import known_names, sentence_entities
from recursum.service.engine.pipeline.polarity import flip_polarity

PlantKind = Literal["foreign", "swap", "negation"]
KINDS: tuple[PlantKind, ...] = ("foreign", "swap", "negation")
CHARACTERS = 8  # most frequent names of a story that swaps draw from
MIN_MENTIONS = 3  # a character is named at least this often in the story


def negate(sentence: str) -> str | None:
    """A planted negation: the sentence's polarity flipped (`flip_polarity`, past-tense verbs included),
    or None if no edit applies."""
    return flip_polarity(sentence, past_tense=True)


def swap_name(sentence: str, characters: list[str], rng: random.Random) -> str | None:
    """Replace one character named in `sentence` (every mention) by another of the story."""
    named = [c for c in characters if re.search(rf"\b{re.escape(c)}\b", sentence)]
    if not named:
        return None
    victim = rng.choice(named)
    others = [c for c in characters if c not in named]
    if not others:
        return None
    return re.sub(rf"\b{re.escape(victim)}\b", rng.choice(others), sentence)


def characters(sentences: list[str]) -> list[str]:
    """The text's most often named entities."""
    names = known_names(sentences)
    counts = Counter(e for s in sentences for e in sentence_entities(s, names))
    return [name for name, n in counts.most_common(CHARACTERS) if n >= MIN_MENTIONS]


def plant(sentences: list[str], kind: PlantKind, cast: list[str], foreign: list[str],
          rng: random.Random) -> tuple[list[str], int] | None:
    """`sentences` with one of them made false in the way `kind` says, and its index; None when
    no sentence allows it (no character named, no negatable verb)."""
    order = rng.sample(range(len(sentences)), len(sentences))
    for index in order:
        match kind:
            case "foreign":
                false = rng.choice(foreign) if foreign else None
            case "swap":
                false = swap_name(sentences[index], cast, rng)
            case "negation":
                false = negate(sentences[index])
        if false and false != sentences[index]:
            return sentences[:index] + [false] + sentences[index + 1 :], index
    return None
