"""The summary tree as stored, served and returned by the engine: nodes, sentences, evidence, spans."""

from typing import Literal

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


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    """A summary of a node that was generated but not chosen (best-of-n), kept for evaluators to compare."""

    summary: str
    sentences: tuple[Sentence, ...]
    reward: float | None = None  # the reward adapter's normalized score; None without a reward model
    source: str  # what wrote it: "sample:<i>" for best-of-n samples, "adapter:<name>" for another adapter


class DroppedSentence(msgspec.Struct, frozen=True, kw_only=True):
    """A generated sentence the evidence screen refused, and why (meta-commentary, an invented name, no
    support down to the source)."""

    text: str
    reason: str


class Node(msgspec.Struct, frozen=True, kw_only=True):
    """A summary of `span`: a chunk at height 0, or a merge of `children` above it.

    With best-of-n, `summary` is the candidate the reward model scored best (`reward`), and the
    others are kept in `candidates`.
    """

    id: str
    key: str
    height: int
    index: int
    role: Role
    adapter: str | None  # the role whose adapter wrote it, None for the base model
    span: Span
    children: tuple[str, ...]
    summary: str
    sentences: tuple[Sentence, ...]
    source_sentences: tuple[Span, ...] = ()
    prompt_tokens: int = 0
    generated_tokens: int = 0
    truncated: bool = False
    cached: bool = False
    reward: float | None = None
    candidates: tuple[Candidate, ...] = ()
    dropped: tuple[DroppedSentence, ...] = ()  # generated sentences the evidence screen refused
    extractive: bool = False  # nothing generated survived: `summary` is sentences of the node's input
    generations: tuple[str, ...] = ()  # content addresses of the cached generations it was made from
    composed: bool = False  # the root joins its children's summaries, a paragraph each; nothing generated
    adapter_version: str | None = None  # the fingerprint of the adapter that wrote it


class ModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What generated the tree: enough to tell whether cached nodes are comparable."""

    base: str
    fingerprint: str
    quantization: str
    dtype: str
    device: str
    adapters: dict[str, str] = {}  # role -> the adapter's fingerprint
    bundle: str = "none"  # the version of the adapter set served (a digest of `adapters`; "none": bare)
