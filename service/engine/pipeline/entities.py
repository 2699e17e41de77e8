"""Named entities without a model: the names a claim must find in its evidence.

Embeddings barely notice a swapped character name, so evidence checks names explicitly. spaCy
models cannot be installed here, and fiction's entities are mostly character and place names, which
English marks by capitalization. A word counts as a name when the text capitalizes it mid-sentence
more often than it writes it in lowercase: that keeps "Gloria" and "Mars" while dropping title-case
headings ("Jinx Ship To The Rescue") and emphasis. Sentence-initial words carry no signal, so they
are names only if the text names them elsewhere. Multiword names count word by word, which lets a
summary say "Strykalski" where the story says "David Farragut Strykalski".
"""

import re
from collections import Counter
from collections.abc import Iterable, Iterator

# Words keep inner apostrophes so "didn't" stays one token for negation cues and "Gloria's" can
# lose its possessive.
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_POSSESSIVE = re.compile(r"['’]s$", re.IGNORECASE)
# After these a capital letter starts a clause (dialogue, a colon, a parenthesis), not a name.
_CLAUSE_OPENERS = frozenset('.!?:;"“”‘(—–')

# Capitalized words that are never character names even where the text capitalizes them
# mid-sentence: honorifics and titles (they do not identify anyone: "Captain Strike" is "Strike"),
# pronouns and function words that follow a dash or an ellipsis, and calendar words.
_NOT_NAMES = frozenset(
    """
    Mr Mrs Ms Miss Dr Sir Madam Madame Lady Lord St Mister Messrs Doctor Professor
    Captain Lieutenant Commander Admiral Colonel General Major Sergeant Officer Ambassador
    King Queen Prince Princess President Excellency
    I He She It We They You His Her Hers Its Our Their Your My Me Him Them Us
    The A An This That These Those And But Or Nor So Yet For Of In On At To From With By As If
    When While After Before Then There Here What Who Whom Whose Why How Where Which Not No Yes Oh
    Monday Tuesday Wednesday Thursday Friday Saturday Sunday
    January February March April May June July August September October November December
    """.split()  # noqa: SIM905 (a word list reads best as text)
)


def words(text: str) -> list[str]:
    """The word tokens of `text`, apostrophes kept inside words."""
    return _WORD.findall(text)


def _name_form(word: str) -> str:
    return _POSSESSIVE.sub("", word)


def _capitalized(word: str) -> bool:
    # A capital followed by some lowercase before any apostrophe: excludes "I", "I'm", initials
    # and ALL-CAPS headings (and, at that price, "O'Brien").
    head = re.split("['’]", word, maxsplit=1)[0]
    return head[0].isupper() and any(c.islower() for c in head[1:])


def _positioned_words(sentence: str) -> Iterator[tuple[str, bool]]:
    """Each word of `sentence` with whether it opens a clause (so its capital says nothing)."""
    previous_end = 0
    for match in _WORD.finditer(sentence):
        gap = sentence[previous_end : match.start()]
        yield _name_form(match.group()), previous_end == 0 or any(c in _CLAUSE_OPENERS for c in gap)
        previous_end = match.end()


def known_names(sentences: Iterable[str]) -> frozenset[str]:
    """Words that `sentences` capitalize mid-clause more often than they write in lowercase."""
    capitalized: Counter[str] = Counter()
    lowercase: Counter[str] = Counter()
    for sentence in sentences:
        for word, opens_clause in _positioned_words(sentence):
            if word.islower():
                lowercase[word] += 1
            elif not opens_clause and _capitalized(word):
                capitalized[word] += 1
    return frozenset(
        word
        for word, count in capitalized.items()
        if word not in _NOT_NAMES and count > lowercase[word.lower()]
    )


def sentence_entities(sentence: str, names: frozenset[str]) -> frozenset[str]:
    """The names (from `known_names`) that `sentence` mentions, wherever they stand in it."""
    return frozenset(word for word, _ in _positioned_words(sentence) if word in names)
