"""What a tree will cost before any of it runs: its exact shape, and its tokens.

The shape is exact: the leaves are the document's real chunks and the heights above follow from them
(`shape.py`). Tokens take every summary at `summary_length` tokens: by default its full `summary_tokens`,
an upper bound the service's budgets refuse jobs by; an estimate for a user takes the mean length this
replica measured. The root composes the top height (nothing generated) when its summaries at that length
fit in `root_words`. Every node costs `best_of` generations.
"""

import functools

import msgspec

from recursum.schemas.jobs import EstimateRead, ThroughputBasis
from recursum.schemas.tree import Role
from recursum.service.engine.pipeline.chunking import chunk_document
from recursum.service.engine.pipeline.prompts import CAST_SIZE, PromptInput, focused, render_messages
from recursum.service.engine.pipeline.shape import tree_shape
from recursum.service.engine.pipeline.tokens import count_tokens_batch
from recursum.service.engine.pipeline.tree import TreeConfig

CHAT_MARKUP_TOKENS = 5  # a chat template's role header and end marker, per message and for the reply


@functools.cache
def prompt_overhead(role: Role, question: str = "") -> int:
    """Tokens of a prompt beside its input: the instruction (a merge's with a full cast, either with the
    question if there is one) and chat markup."""
    cast = ("Alice",) * CAST_SIZE if role == "merge" else ()
    messages = render_messages(focused(PromptInput(role=role, passage="", cast=cast), question))
    instruction = sum(count_tokens_batch([message["content"] for message in messages]))
    return instruction + CHAT_MARKUP_TOKENS * (len(messages) + 1)


WORDS_PER_TOKEN = 0.75


class WorkEstimate(msgspec.Struct, frozen=True, kw_only=True):
    chunks: int
    nodes: list[int]  # nodes per height, leaves first, the root last
    prompt_tokens: int
    generated_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.generated_tokens

    def read(self, seconds: float | None = None, basis: ThroughputBasis = "none") -> EstimateRead:
        """The estimate on the wire, with the time it would take where a throughput is known."""
        return EstimateRead(chunks=self.chunks, nodes=self.nodes, prompt_tokens=self.prompt_tokens,
                            generated_tokens=self.generated_tokens, seconds=seconds, basis=basis)

    def describe(self) -> str:
        """The estimate in words, for the refusal of a job over budget."""
        return (f"about {self.total_tokens:,} tokens ({self.chunks} chunks, {sum(self.nodes)} "
                f"nodes; {self.prompt_tokens:,} prompt and {self.generated_tokens:,} generated tokens)")


def estimate_work(text: str, config: TreeConfig, summary_length: float | None = None) -> WorkEstimate:
    """The cost of summarizing normalized `text` under `config`, summaries `summary_length` tokens long
    (default: full length)."""
    chunks = chunk_document(text, config.chunk_tokens)
    summary = min(summary_length or config.summary_tokens, config.summary_tokens)
    context = config.context_tokens if config.context == "preceding-text" else 0
    prompt = sum(chunk.tokens + context + prompt_overhead("chunk", config.question) for chunk in chunks)
    shape = tree_shape(len(chunks), config)
    levels = list(shape.levels)
    composed = len(levels) > 1 and levels[-2] * summary * WORDS_PER_TOKEN <= config.root_words
    merged = levels[1:-1] if composed else levels[1:]  # heights whose nodes are generated merges
    prompt += sum(below * summary + above * prompt_overhead("merge", config.question)  # children read once
                  for below, above in zip(levels, merged, strict=False))
    generated = sum(levels) - composed
    samples = config.best_of
    return WorkEstimate(chunks=len(chunks), nodes=levels, prompt_tokens=prompt * samples,
                        generated_tokens=round(generated * summary) * samples)
