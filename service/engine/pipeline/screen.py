"""Evidence as a control: a generated node's sentences are screened before the node is accepted.

A sentence is dropped when it talks about the text instead of the story (meta-commentary), names someone
its span's source never names (an invented name), or has no support down to the original text (its
source support, composed through the children, under the threshold: a merge of wrong children does not
look supported); so is a last sentence the length limit cut off. When nothing survives, the node is
resampled, then falls back to an extractive summary of its input, so no node is ever empty or off-topic.
What was dropped, and why, stays on the node for evaluators.
"""

import re
from collections.abc import Sequence

from recursum.schemas.tree import DroppedSentence, Sentence
from recursum.service.engine.pipeline.commentary import is_meta_commentary
from recursum.service.engine.pipeline.entities import known_names, sentence_entities, words
from recursum.service.engine.pipeline.roster import invented_names, vocabulary

_FINISHED = re.compile(r"[.!?…][\"'”’)\]]*\s*$")  # a sentence's end, closing quotes and brackets after it
EXTRACTIVE_SENTENCES = 3  # input sentences an extractive fallback keeps
EXTRACT_MAX_WORDS = 50  # longer input sentences are used only when no other will do


def drop_reason(sentence: Sentence, source_vocabulary: frozenset[str], threshold: float) -> str | None:
    """Why `sentence` must not stand in a summary of a span whose original text has `source_vocabulary`
    (`roster.vocabulary`), or None."""
    if is_meta_commentary(sentence.text):
        return "meta-commentary: it talks about the text, not the story"
    if invented := invented_names(sentence.text, source_vocabulary):
        return f"names {', '.join(invented)}, whom the source never names"
    if sentence.source_support < threshold:
        return f"unsupported by the source (support {sentence.source_support:.2f} < {threshold:.2f})"
    return None


def screen(sentences: Sequence[Sentence], source: str,
           threshold: float) -> tuple[tuple[Sentence, ...], tuple[DroppedSentence, ...]]:
    """(the sentences that stand, the ones dropped with their reasons)."""
    source_vocabulary = vocabulary(source)  # once per node: a merge's span can be the whole book
    kept, dropped = [], []
    for i, sentence in enumerate(sentences):
        reason = drop_reason(sentence, source_vocabulary, threshold)
        if reason is None and i == len(sentences) - 1 and not _FINISHED.search(sentence.text):
            reason = "unfinished: the generation stopped at its length limit mid-sentence"
        if reason is None:
            kept.append(sentence)
        else:
            dropped.append(DroppedSentence(text=sentence.text, reason=reason))
    return tuple(kept), tuple(dropped)


def extractive_summary(inputs: Sequence[str], limit: int = EXTRACTIVE_SENTENCES) -> str:
    """The input sentences that name the most of the input's characters (ties: the nearer to 20 words, then
    the earlier), in reading order: a grounded stand-in when every generated sentence was dropped. A
    sentence about the text (a title page, a table of contents) is the screen's meta-commentary when
    generated, and no better when copied, so it is used only when nothing else is left."""
    story = [" ".join(text.split()) for text in inputs if text.strip() and not is_meta_commentary(text)]
    # A run of dialogue can split as one sentence of a hundred words: an extract of those reads as a wall.
    usable = ([text for text in story if 4 <= len(words(text)) <= EXTRACT_MAX_WORDS] or story
              or [" ".join(text.split()) for text in inputs if text.strip()])
    names = known_names(usable)

    def rank(i: int) -> tuple[int, int, int]:
        return -len(sentence_entities(usable[i], names)), abs(len(words(usable[i])) - 20), i

    ranked = sorted(range(len(usable)), key=rank)
    return " ".join(usable[i] for i in sorted(ranked[:limit]))
