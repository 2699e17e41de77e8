"""Polarity flips without a model: a sentence turned into its opposite with the cheapest grammatical edit.

The critique's counterfactual check scores a summary sentence's opposite against its inputs, and the
planted `negation` errors training and the benches use are such opposites; both make them here.
"""

import re

_NEGATION = re.compile(r"\s*\b(?:not|never)\b|n['’]t\b", re.IGNORECASE)
_AUXILIARY = re.compile(
    r"\b(is|are|was|were|has|have|had|can|could|will|would|should|must|may|might|does|do|did)\b"
)
_PAST_VERB = re.compile(r"(?<=\s)([a-z]{3,}ed)\b")


def flip_polarity(sentence: str, *, past_tense: bool = False) -> str | None:
    """The sentence with its polarity flipped, or None if no edit applies.

    An existing "not"/"never"/"n't" is removed ("didn't go" -> "did go"); otherwise "not" goes after
    the first auxiliary ("was captured" -> "was not captured"); otherwise, with `past_tense`, "never"
    goes before the first past-tense "-ed" word ("escaped" -> "never escaped").
    """
    if _NEGATION.search(sentence):
        return _NEGATION.sub("", sentence, count=1)
    if match := _AUXILIARY.search(sentence):
        return f"{sentence[: match.end()]} not{sentence[match.end() :]}"
    if past_tense and (match := _PAST_VERB.search(sentence)):
        return f"{sentence[: match.start()]}never {sentence[match.start() :]}"
    return None
