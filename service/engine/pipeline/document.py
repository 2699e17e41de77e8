"""Turn user bytes into a normalized `Document` whose character offsets every span refers to."""

import hashlib
import unicodedata

import msgspec

from recursum.service.engine.errors import DocumentTooLarge, EmptyDocument, NotText

DEFAULT_MAX_BYTES = 20 * 1024 * 1024


class Document(msgspec.Struct, frozen=True, kw_only=True):
    """Normalized text; `id` is the sha256 of that text, so equal books share cached work."""

    id: str
    title: str
    text: str


def normalize_text(text: str) -> str:
    """NFC, LF line endings, no BOM, no trailing spaces on lines, no leading/trailing blank space.

    Spans are offsets into this form, so it must be stable: the same book always normalizes alike.
    """
    text = unicodedata.normalize("NFC", text.lstrip("\ufeff"))
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip()


def decode_document_bytes(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """Decode strict UTF-8, refusing binary data, before any work is spent on it."""
    if len(data) > max_bytes:
        raise DocumentTooLarge(f"document is {len(data):,} bytes; the limit is {max_bytes:,} bytes")
    if b"\x00" in data:
        raise NotText("document looks binary (it contains NUL bytes); send plain UTF-8 text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise NotText(
            f"document is not valid UTF-8 (bad byte at offset {error.start}); convert it to UTF-8"
        ) from None


def make_document(text: str, title: str = "", max_bytes: int = DEFAULT_MAX_BYTES) -> Document:
    """Normalize and identify a document; raise a typed error for empty or oversized input."""
    if len(text.encode("utf-8")) > max_bytes:
        raise DocumentTooLarge(f"document exceeds the limit of {max_bytes:,} bytes")
    normalized = normalize_text(text)
    if not normalized:
        raise EmptyDocument("document is empty (only whitespace)")
    digest = hashlib.sha256(normalized.encode("utf-8")).hexdigest()
    return Document(id=digest, title=title, text=normalized)
