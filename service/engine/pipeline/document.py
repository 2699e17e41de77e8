"""Turn user bytes into a normalized `Document` whose character offsets every span refers to."""

import functools
import hashlib
import re
import sys
import unicodedata

import msgspec

from recursum.service.engine.errors import DocumentTooLarge, EmptyDocument, NotStreamSafe, NotText

DEFAULT_MAX_BYTES = 20 * 1024 * 1024


class Document(msgspec.Struct, frozen=True, kw_only=True):
    """Normalized text; `id` is the sha256 of that text, so equal books share cached work."""

    id: str
    title: str
    text: str


# Unicode's stream-safe text format (UAX #15) allows at most 30 non-starters in a row. Normalizing a longer
# run costs time quadratic in its length (16k marks: 0.39 s, x4 per doubling), enough for one body to hold
# the process for minutes, and no text in any language needs one.
MAX_COMBINING_RUN = 30


@functools.cache
def _combining_run() -> re.Pattern[str]:
    """A run of more than `MAX_COMBINING_RUN` characters with a non-zero canonical combining class."""
    ranges: list[tuple[int, int]] = []
    for code in range(sys.maxunicode + 1):
        if unicodedata.combining(chr(code)):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    marks = "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)
    return re.compile(f"[{marks}]{{{MAX_COMBINING_RUN + 1},}}")


def check_combining_runs(text: str) -> None:
    """Refuse text that is not stream-safe before anything normalizes it."""
    if run := _combining_run().search(text):
        raise NotStreamSafe(f"document has a run of {len(run.group())} combining marks at character "
                            f"{run.start()}; Unicode's stream-safe format allows at most {MAX_COMBINING_RUN}")


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
    check_combining_runs(text)
    normalized = normalize_text(text)
    if not normalized:
        raise EmptyDocument("document is empty (only whitespace)")
    digest = hashlib.sha256(normalized.encode("utf-8")).hexdigest()
    return Document(id=digest, title=title, text=normalized)
