"""The characters of a span of text, most mentioned first, and the names a summary invents.

Built on `entities.known_names`: a name is a word the text capitalizes mid-sentence more often than it
writes it in lowercase. A summary may name only who its span's source names; anything else is an error
that compounds up the tree.
"""

from collections import Counter

from recursum.service.engine.pipeline.entities import known_names, sentence_entities, words
from recursum.service.engine.pipeline.sentences import split_sentences


def roster(text: str, limit: int | None = None) -> list[str]:
    """The names `text` mentions, most mentioned first (ties in order of first mention)."""
    sentences = split_sentences(text)
    names = known_names(sentences)
    mentions: Counter[str] = Counter()
    for sentence in sentences:
        mentions.update(sorted(sentence_entities(sentence, names), key=sentence.find))
    return [name for name, _ in mentions.most_common(limit)]


def summary_names(summary: str, source_names: frozenset[str] = frozenset()) -> list[str]:
    """The names a summary uses, in order: words it capitalizes mid-sentence, and words its source names
    wherever they stand (a sentence-initial "Alice" is a name when the source says so)."""
    sentences = split_sentences(summary)
    names = known_names(sentences) | source_names
    used: dict[str, None] = {}
    for sentence in sentences:
        for name in sorted(sentence_entities(sentence, names), key=sentence.find):
            used.setdefault(name, None)
    return list(used)


def vocabulary(text: str) -> frozenset[str]:
    """Every word of `text`, lowercased: what a name must be among to occur in it."""
    return frozenset(word.lower() for word in words(text))


def invented_names(summary: str, source_vocabulary: frozenset[str]) -> list[str]:
    """Names `summary` uses that occur nowhere in the source whose `vocabulary` is given (as any word, in any
    case), in summary order."""
    return [name for name in summary_names(summary) if name.lower() not in source_vocabulary]


def names_in_action(summary: str, names: list[str]) -> list[str]:
    """Which of `names` the summary mentions in a sentence that tells something (five words or more, at
    most half of them names): a bare list of characters does not count."""
    told: set[str] = set()
    for sentence in split_sentences(summary):
        tokens = words(sentence)
        mentioned = sentence_entities(sentence, frozenset(names))
        if len(tokens) >= 5 and len(mentioned) * 2 <= len(tokens):
            told |= mentioned
    return [name for name in names if name in told]
