from conftest import shared_data
from hypothesis import given, settings
from hypothesis import strategies as st

from recursum.service.engine.pipeline.chunking import chunk_document
from recursum.service.engine.pipeline.document import normalize_text
from recursum.service.engine.pipeline.tokens import count_tokens

_words = st.sampled_from(["Alice", "ran", "the", "rabbit-hole", "«quoth»", "Zoë", "3.14", "—", "",
                          "a" * 300, "supercalifragilistic" * 5, "!!!"])
_sentence = st.lists(_words, min_size=1, max_size=40).map(lambda w: " ".join(w) + ".")
_paragraph = st.lists(_sentence, min_size=1, max_size=12).map(" ".join)
_document = st.lists(_paragraph, min_size=1, max_size=12).map(lambda p: "\n\n".join(p))


def _assert_tiles(text: str, chunks) -> None:
    assert chunks[0].span.start == 0
    assert chunks[-1].span.end == len(text)
    for left, right in zip(chunks, chunks[1:], strict=False):
        assert left.span.end == right.span.start


@settings(max_examples=60, deadline=None)
@given(text=_document.map(normalize_text).filter(bool), budget=st.integers(min_value=32, max_value=400))
def test_chunks_tile_the_document_within_the_budget(text, budget):
    chunks = chunk_document(text, budget)
    _assert_tiles(text, chunks)
    for chunk in chunks:
        piece = text[chunk.span.start : chunk.span.end]
        assert piece
        assert chunk.tokens == count_tokens(piece) <= budget


def test_cuts_fall_on_paragraph_boundaries_when_paragraphs_fit():
    paragraphs = [f"Paragraph {i} says something short about the story." for i in range(30)]
    text = "\n\n".join(paragraphs)
    chunks = chunk_document(text, 60)
    assert len(chunks) > 1
    for chunk in chunks[:-1]:
        assert text[chunk.span.end - 2 : chunk.span.end] == "\n\n"


def test_a_long_paragraph_is_cut_at_sentence_boundaries():
    text = " ".join(f"Sentence number {i} tells of the whale." for i in range(80))
    chunks = chunk_document(text, 50)
    assert len(chunks) > 1
    for chunk in chunks[:-1]:
        assert text[chunk.span.start : chunk.span.end].rstrip().endswith(".")


def test_a_word_longer_than_the_budget_is_cut_at_token_boundaries():
    text = "x" * 5000
    chunks = chunk_document(text, 40)
    _assert_tiles(text, chunks)
    assert all(chunk.tokens <= 40 for chunk in chunks)


def test_a_real_book_chunks_the_same_way_twice():
    text = normalize_text(shared_data("books/alice_in_wonderland.txt").read_text())
    first = chunk_document(text, 600)
    _assert_tiles(text, first)
    assert first == chunk_document(text, 600)
    assert max(chunk.tokens for chunk in first) <= 600


def test_runs_of_multibyte_characters_stay_within_the_budget():
    text = "😀漢字テスト🎉" * 60
    for budget in (7, 32, 40):
        chunks = chunk_document(text, budget)
        _assert_tiles(text, chunks)
        assert all(count_tokens(text[c.span.start : c.span.end]) <= budget for c in chunks)
