"""How much memory a generation batch may take, so the server bounds every batch whatever a job asks.

A job's options allow up to 256 rows of prompts as long as the model's window; unbounded, one such job
is enough to kill a replica with an out-of-memory error, and again on every replica that claims it next.
"""

import msgspec
import psutil
import torch

# The share of the memory free at load time that one batch may use: the rest holds the weights' working
# copies, the evidence scorer, the HTTP side and the store.
CPU_SHARE = 0.25
GPU_SHARE = 0.5


class BatchMemory(msgspec.Struct, frozen=True, kw_only=True):
    """A batch's estimated peak: every row's key/value cache over prompt and output, plus one layer's
    attention scores at prefill (the math path materializes heads × prompt × prompt per row)."""

    budget_bytes: int
    kv_bytes_per_token: int  # 2 (keys and values) × layers × key/value heads × head size × dtype bytes
    score_bytes: int  # attention heads × dtype bytes: one prefill score matrix costs this × prompt²

    def row_bytes(self, prompt_tokens: int, new_tokens: int) -> int:
        """The peak bytes of one row with a prompt of `prompt_tokens` generating `new_tokens`."""
        return (self.kv_bytes_per_token * (prompt_tokens + new_tokens)
                + self.score_bytes * prompt_tokens * prompt_tokens)

    def rows_that_fit(self, longest_prompt: int, new_tokens: int) -> int:
        """How many rows as long as `longest_prompt` fit the budget; at least one, so any job can run."""
        return max(1, self.budget_bytes // self.row_bytes(longest_prompt, new_tokens))


def batch_memory(config, dtype: torch.dtype, device: torch.device, budget_mb: int | None) -> BatchMemory:
    """The estimate for a loaded model's `config`; the budget is `budget_mb` when set, else a share of
    the memory free now on `device`."""
    heads = config.num_attention_heads
    head_size = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    dtype_bytes = torch.finfo(dtype).bits // 8
    if budget_mb is not None:
        budget = budget_mb * 1024 * 1024
    elif device.type == "cuda":
        budget = int(torch.cuda.mem_get_info(device)[0] * GPU_SHARE)
    else:
        budget = int(psutil.virtual_memory().available * CPU_SHARE)
    return BatchMemory(budget_bytes=budget,
                       kv_bytes_per_token=2 * config.num_hidden_layers * kv_heads * head_size * dtype_bytes,
                       score_bytes=heads * dtype_bytes)
