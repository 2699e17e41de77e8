"""The summary tree: msgspec structs shared by the engine, the CLI's JSON output and (later) the store.

Identity: `Node.key` is the content address (role, adapter, prompt inputs, generation settings) used
by the generation cache; `Node.id` adds the node's place in the document so ids stay unique in a tree
even when a book repeats a passage word for word.
"""

from typing import Annotated, Literal

import msgspec

Role = Literal["chunk", "merge", "helper", "reward"]
SOURCE = "source"  # EvidenceLink.target for a height-0 sentence: it points into the original text


class Span(msgspec.Struct, frozen=True, array_like=True, order=True):
    """Half-open character range [start, end) of the normalized document."""

    start: int
    end: int


class EvidenceLink(msgspec.Struct, frozen=True, kw_only=True):
    """A supporting sentence: `sentence` indexes node `target`'s sentences, or the leaf's
    `source_sentences` when `target` is "source"."""

    target: str
    sentence: int
    score: float


class Sentence(msgspec.Struct, frozen=True, kw_only=True):
    """One summary sentence with its evidence.

    `support` scores the best link against the node's inputs; `source_support` is the weakest
    step on the best chain down to the original text, which is what exposes a claim that a merge
    invented or that an earlier level already got wrong.
    """

    text: str
    support: float
    source_support: float
    unsupported: bool
    links: tuple[EvidenceLink, ...] = ()
    source_spans: tuple[Span, ...] = ()


class Node(msgspec.Struct, frozen=True, kw_only=True):
    """A summary of `span`: a chunk at height 0, or a merge of `children` above it."""

    id: str
    key: str
    height: int
    index: int
    role: Role
    adapter: str | None
    span: Span
    children: tuple[str, ...]
    summary: str
    sentences: tuple[Sentence, ...]
    source_sentences: tuple[Span, ...] = ()
    prompt_tokens: int = 0
    generated_tokens: int = 0
    truncated: bool = False
    cached: bool = False


PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
ContextMode = Literal["none", "preceding-text"]


class TreeConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything that shapes a tree; saved in it so a tree says how it was made."""

    chunk_tokens: Annotated[int, msgspec.Meta(ge=32, le=32768)] = 600
    merge_tokens: Annotated[int, msgspec.Meta(ge=64, le=32768)] = 900
    max_children: Annotated[int, msgspec.Meta(ge=2, le=64)] = 6
    summary_tokens: Annotated[int, msgspec.Meta(ge=8, le=4096)] = 200
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=256)] = 8
    context: ContextMode = "none"
    context_tokens: Annotated[int, msgspec.Meta(ge=0, le=8192)] = 200
    temperature: Annotated[float, msgspec.Meta(ge=0.0, le=2.0)] = 0.0
    seed: int = 0
    evidence_links: Annotated[int, msgspec.Meta(ge=1, le=16)] = 3
    evidence_threshold: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.25


class ModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What generated the tree: enough to tell whether cached nodes are comparable."""

    base: str
    fingerprint: str
    quantization: str
    dtype: str
    device: str
    adapters: dict[str, str] = {}


class Chunk(msgspec.Struct, frozen=True, kw_only=True):
    """A token-budgeted slice of the document; chunk spans tile the text exactly."""

    index: int
    span: Span
    tokens: int


class Tree(msgspec.Struct, kw_only=True):
    """A finished summary tree. `heights[h]` lists node ids of height h in document order."""

    document_id: str
    title: str
    text_length: int
    config: TreeConfig
    model: ModelInfo
    chunks: list[Chunk]
    heights: list[list[str]]
    nodes: dict[str, Node]
    root: str

    @property
    def root_node(self) -> Node:
        return self.nodes[self.root]
