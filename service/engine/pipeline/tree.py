"""The tree as the engine builds it: its configuration, the chunks and the whole `Tree`.

The node-level structs (Span, Node, Sentence, EvidenceLink, ModelInfo) are shared with the wire and
live in `recursum.schemas.tree`.

Identity: `Node.key` is the content address (role, adapter, prompt inputs, generation settings) used
by the generation cache; `Node.id` adds the node's place in the document so ids stay unique in a tree
even when a book repeats a passage word for word.
"""

from typing import Annotated

import msgspec

from recursum.schemas.options import (
    BatchSize,
    BestOf,
    BestOfMargin,
    ChunkTokens,
    ContextMode,
    MergeTokens,
    RootWords,
    SummaryOptions,
    SummaryTokens,
)
from recursum.schemas.tree import ModelInfo, Node, Span


class TreeConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything that shapes a tree; saved in it so a tree says how it was made."""

    chunk_tokens: ChunkTokens = 600
    # With full-length summaries (200 tokens) a merge reads 6 children: `shape.fan_in`.
    merge_tokens: MergeTokens = 1200
    max_children: Annotated[int, msgspec.Meta(ge=2, le=64)] = 6
    summary_tokens: SummaryTokens = 200
    batch_size: BatchSize = 8
    context: ContextMode = "none"
    context_tokens: Annotated[int, msgspec.Meta(ge=0, le=8192)] = 200
    temperature: Annotated[float, msgspec.Meta(ge=0.0, le=2.0)] = 0.0
    seed: int = 0
    evidence_links: Annotated[int, msgspec.Meta(ge=1, le=16)] = 3
    evidence_threshold: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.25
    # Best-of-n: the greedy summary plus n-1 samples at `sample_temperature`; the reward adapter picks.
    best_of: BestOf = 1
    sample_temperature: Annotated[float, msgspec.Meta(gt=0.0, le=2.0)] = 0.8
    # A sample replaces the greedy summary only if its reward is higher by more than this (in reward
    # std units): the max of n noisy scores is biased upwards, so small gains are mostly noise.
    best_of_margin: BestOfMargin = 0.0
    # Evidence as a control: drop generated sentences that are meta-commentary, name someone the span's
    # source never names, or lack support down to the source; all dropped -> an extractive summary.
    screen: bool = True
    # Before a node falls back to an extract, this many fresh samples get a chance to pass the screen.
    resample: Annotated[int, msgspec.Meta(ge=0, le=4)] = 1
    # Wu et al.'s top heights: once a height's summaries fit in `root_words` words, the root composes them
    # (beginning, middle and end, one paragraph per child) instead of compressing them again; a small
    # model's merges lose names and add errors at every height, and a story's plot summary is ~350 words.
    root_words: RootWords = 500
    # A question-focused summary (`options.question`): every chunk and merge prompt carries it.
    question: Annotated[str, msgspec.Meta(max_length=1000)] = ""


def tree_config(options: SummaryOptions, base: TreeConfig | None = None) -> TreeConfig:
    """`base` (the defaults) with what the submitter chose."""
    return msgspec.structs.replace(base or TreeConfig(), **options.chosen())


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
