"""The server's bound on one generation batch, derived from the model's shape and the memory free."""

import torch
from transformers import LlamaConfig

from recursum.service.engine.models.batch_memory import BatchMemory, batch_memory

CONFIG = LlamaConfig(num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, hidden_size=576)


def test_the_estimate_counts_the_key_value_cache_and_the_prefill_scores():
    memory = batch_memory(CONFIG, torch.bfloat16, torch.device("cpu"), budget_mb=1024)
    assert memory.kv_bytes_per_token == 2 * 30 * 3 * 64 * 2
    assert memory.row_bytes(100, 28) == memory.kv_bytes_per_token * 128 + 9 * 2 * 100 * 100
    assert memory.budget_bytes == 1024 * 1024 * 1024


def test_longer_prompts_fit_fewer_rows_and_one_row_always_fits():
    memory = BatchMemory(budget_bytes=100 * 1024 * 1024, kv_bytes_per_token=23_040, score_bytes=18)
    assert memory.rows_that_fit(200, 64) > memory.rows_that_fit(2000, 64)
    assert memory.rows_that_fit(8000, 512) == 1  # a row over budget still runs, alone


def test_without_a_setting_the_budget_is_a_share_of_the_free_memory():
    memory = batch_memory(CONFIG, torch.float32, torch.device("cpu"), budget_mb=None)
    assert memory.budget_bytes > 0
