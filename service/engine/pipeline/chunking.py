"""Cut a document into chunks of at most `chunk_tokens` cl100k tokens whose spans tile the text.

Cuts prefer paragraph boundaries, then sentence boundaries, then word boundaries, and only as a
last resort token boundaries (a "word" longer than the budget, such as a run of symbols).
Whitespace between pieces belongs to the piece before it, so there is never a gap or overlap.
"""

import re

from recursum.schemas.tree import Span
from recursum.service.engine.pipeline.sentences import sentence_spans
from recursum.service.engine.pipeline.tokens import count_tokens, count_tokens_batch, encoding
from recursum.service.engine.pipeline.tree import Chunk

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n\s*")
_WORD = re.compile(r"\S+\s*")


def _tile(text: str, start: int, end: int, cuts: list[int]) -> list[Span]:
    """Spans from `start` to `end` cut at the given interior offsets."""
    bounds = [start, *sorted(c for c in set(cuts) if start < c < end), end]
    return [Span(a, b) for a, b in zip(bounds, bounds[1:], strict=False)]


def _paragraphs(text: str) -> list[Span]:
    return _tile(text, 0, len(text), [m.end() for m in _PARAGRAPH_BREAK.finditer(text)])


def _sentences(text: str, span: Span) -> list[Span]:
    starts = [s.start for s in sentence_spans(text[span.start : span.end], span.start)]
    return _tile(text, span.start, span.end, starts)


def _words(text: str, span: Span) -> list[Span]:
    ends = [span.start + m.end() for m in _WORD.finditer(text[span.start : span.end])]
    return _tile(text, span.start, span.end, ends)


def _token_pieces(text: str, span: Span, budget: int) -> list[Span]:
    """Cut at token boundaries, `budget` tokens a piece.

    Tokens can split a multi-byte character, and re-encoding a cut piece can tokenize differently,
    so each cut is re-counted and moved back until the piece fits.
    """
    pieces, start = [], span.start
    while start < span.end:
        window = text[start : min(span.end, start + budget * 64)]  # a token covers far fewer chars
        tokens = encoding().encode_ordinary(window)
        if len(tokens) <= budget and start + len(window) == span.end:
            pieces.append(Span(start, span.end))
            break
        # The complete characters inside the first `budget` tokens (a partial one is dropped).
        fitting = encoding().decode_bytes(tokens[:budget]).decode("utf-8", errors="ignore")
        end = start + max(len(fitting), 1)
        while end > start + 1 and count_tokens(text[start:end]) > budget:
            end -= 1
        pieces.append(Span(start, end))
        start = end
    return pieces


_FINER = (_sentences, _words)
_JOIN_SLACK = 16  # tokens a join may add; within it the running sum is trusted


def _pieces_within(text: str, span: Span, budget: int, level: int = 0) -> list[tuple[Span, int]]:
    """Split `span` until every piece fits the budget, going one boundary kind finer each time."""
    tokens = count_tokens(text[span.start : span.end])
    if tokens <= budget:
        return [(span, tokens)]
    if level < len(_FINER):
        parts = _FINER[level](text, span)
        if len(parts) > 1:
            return [p for part in parts for p in _pieces_within(text, part, budget, level + 1)]
        return _pieces_within(text, span, budget, level + 1)
    return [(p, count_tokens(text[p.start : p.end])) for p in _token_pieces(text, span, budget)]


def chunk_document(text: str, chunk_tokens: int) -> list[Chunk]:
    """Greedily pack consecutive pieces into chunks of at most `chunk_tokens` tokens."""
    paragraphs = _paragraphs(text)
    counts = count_tokens_batch([text[p.start : p.end] for p in paragraphs])
    pieces: list[tuple[Span, int]] = []
    for paragraph, tokens in zip(paragraphs, counts, strict=True):
        if tokens <= chunk_tokens:
            pieces.append((paragraph, tokens))
        else:
            pieces.extend(_pieces_within(text, paragraph, chunk_tokens, 0))

    chunks: list[Chunk] = []
    start, end, total = None, 0, 0
    for span, tokens in pieces:
        if start is not None and total + tokens > chunk_tokens - _JOIN_SLACK:
            # Token counts are not additive across a join (whitespace merges differently), so
            # near the budget the running total is replaced by an exact count.
            joined = count_tokens(text[start : span.end])
            if joined > chunk_tokens:
                chunks.append(_make_chunk(text, len(chunks), start, end))
                start, total = None, 0
            else:
                end, total = span.end, joined
                continue
        if start is None:
            start = span.start
        end, total = span.end, total + tokens
    if start is not None:
        chunks.append(_make_chunk(text, len(chunks), start, end))
    return chunks


def _make_chunk(text: str, index: int, start: int, end: int) -> Chunk:
    return Chunk(index=index, span=Span(start, end), tokens=count_tokens(text[start:end]))
