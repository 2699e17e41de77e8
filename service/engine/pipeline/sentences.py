"""Sentence spans with exact character offsets (Blingfire: fast, no model download)."""

import blingfire

from recursum.schemas.tree import Span


def sentence_spans(text: str, offset: int = 0) -> list[Span]:
    """Spans of the sentences in `text`, shifted by `offset`, each trimmed of surrounding space.

    Blingfire joins lines inside a sentence and reports offsets into the original string,
    so a span always points at the exact characters of the source.
    """
    if not text.strip():
        return []
    _, offsets = blingfire.text_to_sentences_and_offsets(text)
    return [Span(start=offset + start, end=offset + end) for start, end in offsets if end > start]


def split_sentences(text: str) -> list[str]:
    """The sentences of a short text such as a generated summary."""
    return [text[span.start : span.end] for span in sentence_spans(text)]
