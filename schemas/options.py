"""What a submitter may set for one summary, declared once: the REST body, the local CLI and the client CLI
all take exactly these fields, with the limits and help that validation, OpenAPI and `--help` share."""

from typing import Annotated, Literal

import msgspec

ChunkTokens = Annotated[int, msgspec.Meta(ge=32, le=32768, description="Chunk budget in cl100k tokens.")]
MergeTokens = Annotated[int, msgspec.Meta(
    ge=64, le=32768, description="Token budget of the child summaries one merge reads.")]
SummaryTokens = Annotated[int, msgspec.Meta(
    ge=8, le=4096, description="Most tokens one summary may generate.")]
BatchSize = Annotated[int, msgspec.Meta(ge=1, le=256, description="Sequences generated together.")]
ContextMode = Annotated[Literal["none", "preceding-text"], msgspec.Meta(
    description="`preceding-text` gives each chunk the raw text just before it.")]
BestOf = Annotated[int, msgspec.Meta(
    ge=1, le=16,
    description="Candidates per node; the reward adapter keeps the best, the rest stay in the tree.")]
BestOfMargin = Annotated[float, msgspec.Meta(
    ge=0.0, le=10.0,
    description="Reward gain (std units) a sample needs over the greedy summary to replace it.")]
RootWords = Annotated[int, msgspec.Meta(
    ge=0, le=20000,
    description="If the top height's summaries (at most max_children) fit in this many words, the root "
                "composes them instead of compressing them further (0: always merge down to one generated "
                "summary).")]


Question = Annotated[str, msgspec.Meta(
    min_length=1, max_length=1000,
    description="Summarize with this question in mind: every node's prompt, chunk and merge, carries it, and "
                "the tree is cached apart from the plain summary.")]
Evaluation = Annotated[bool, msgspec.Meta(
    description="Offer this job to evaluators: its nodes become comparison tasks and evaluate keys may ask "
                "reports about it, which shows them its source text (off by default).")]


class SummaryOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Options a submitter may set; a field left None keeps the engine's default (`TreeConfig`).
    `evaluation` is about the job, not the tree, so it is not among the tree's choices."""

    chunk_tokens: ChunkTokens | None = None
    merge_tokens: MergeTokens | None = None
    summary_tokens: SummaryTokens | None = None
    batch_size: BatchSize | None = None
    context: ContextMode | None = None
    best_of: BestOf | None = None
    best_of_margin: BestOfMargin | None = None
    root_words: RootWords | None = None
    question: Question | None = None
    evaluation: Evaluation | None = None

    def chosen(self) -> dict[str, object]:
        """The tree settings the submitter set."""
        return {name: value for name in self.__struct_fields__
                if name != "evaluation" and (value := getattr(self, name)) is not None}
