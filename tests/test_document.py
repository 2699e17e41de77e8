import pytest

from recursum.service.engine.errors import DocumentTooLarge, EmptyDocument, NotStreamSafe, NotText
from recursum.service.engine.pipeline.document import decode_document_bytes, make_document, normalize_text


def test_normalization_unifies_line_endings_bom_and_trailing_space():
    assert normalize_text("\ufeffOne  \r\nTwo\rThree \n\n") == "One\nTwo\nThree"


def test_equal_text_gets_equal_ids_whatever_the_line_endings():
    assert make_document("A tale.\r\nThe end.").id == make_document("A tale.\nThe end.").id


def test_whitespace_only_is_an_empty_document():
    with pytest.raises(EmptyDocument):
        make_document(" \n\t \n")


def test_invalid_utf8_is_refused_with_the_offset():
    with pytest.raises(NotText, match="offset 3"):
        decode_document_bytes(b"abc\xff\xfe")


def test_binary_data_is_refused():
    with pytest.raises(NotText, match="binary"):
        decode_document_bytes(b"PK\x03\x04\x00\x00")


def test_oversized_bytes_are_refused_before_decoding():
    with pytest.raises(DocumentTooLarge):
        decode_document_bytes(b"a" * 101, max_bytes=100)


def test_a_run_of_combining_marks_past_the_stream_safe_limit_is_refused_before_normalizing():
    with pytest.raises(NotStreamSafe, match="run of 31 combining marks at character 4"):
        make_document("café" + "\u0301" * 31)


def test_thirty_combining_marks_in_a_row_are_still_text():
    assert make_document("e" + "\u0301\u0302" * 15).text.startswith("é")
