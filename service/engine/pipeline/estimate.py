"""What a tree will cost before any of it runs, from the exact chunks and a worst case above them.

Leaves are the document's real chunks. Above them every summary is taken at its full `summary_tokens`
(about 0.75 words a token), so merge groups and heights are as large as they can get; the root is
composed once a height fits in `root_words`. Every node costs `best_of` generations. The service refuses
jobs past its budgets with these figures, so a user sees what to change.
"""

import math

import msgspec

from recursum.schemas.jobs import EstimateRead, ThroughputBasis
from recursum.service.engine.pipeline.chunking import chunk_document
from recursum.service.engine.pipeline.tree import TreeConfig

PROMPT_OVERHEAD_TOKENS = 80  # the chat template and instruction around a passage
WORDS_PER_TOKEN = 0.75


class WorkEstimate(msgspec.Struct, frozen=True, kw_only=True):
    chunks: int
    nodes: list[int]  # generated nodes per height, leaves first
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
        return (f"about {self.total_tokens:,} tokens ({self.chunks} chunks, {sum(self.nodes)} generated "
                f"nodes; {self.prompt_tokens:,} prompt and {self.generated_tokens:,} generated tokens)")


def estimate_work(text: str, config: TreeConfig) -> WorkEstimate:
    """The cost of summarizing normalized `text` under `config`."""
    chunks = chunk_document(text, config.chunk_tokens)
    context = config.context_tokens if config.context == "preceding-text" else 0
    prompt = sum(chunk.tokens + context + PROMPT_OVERHEAD_TOKENS for chunk in chunks)
    nodes = [len(chunks)]
    fan_in = max(2, min(config.max_children, config.merge_tokens // config.summary_tokens))
    level = len(chunks)
    while level > 1 and level * config.summary_tokens * WORDS_PER_TOKEN > config.root_words:
        level = math.ceil(level / fan_in)
        nodes.append(level)
        prompt += level * (fan_in * config.summary_tokens + PROMPT_OVERHEAD_TOKENS)
    samples = config.best_of
    return WorkEstimate(chunks=len(chunks), nodes=nodes, prompt_tokens=prompt * samples,
                        generated_tokens=sum(nodes) * config.summary_tokens * samples)
