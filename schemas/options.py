"""What a submitter may set for one summary, with the limits that validation, OpenAPI and the engine share."""

from typing import Annotated, Literal

import msgspec

ContextMode = Literal["none", "preceding-text"]
# Limits shared by the wire options and the engine's TreeConfig, so validation and OpenAPI agree.
ChunkTokens = Annotated[int, msgspec.Meta(ge=32, le=32768)]
SummaryTokens = Annotated[int, msgspec.Meta(ge=8, le=4096)]
BatchSize = Annotated[int, msgspec.Meta(ge=1, le=256)]
BestOf = Annotated[int, msgspec.Meta(ge=1, le=16)]


class SummaryOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Options a submitter may set; the rest of TreeConfig keeps its defaults."""

    chunk_tokens: ChunkTokens | None = None
    summary_tokens: SummaryTokens | None = None
    batch_size: BatchSize | None = None
    context: ContextMode | None = None
    best_of: BestOf = 1
