import msgspec
import pytest
import torch

from recursum.service.engine.errors import ConfigError
from recursum.service.engine.models.runtime import load_runtime
from recursum.service.engine.models.spec import ModelSpec
from recursum.service.engine.pipeline import generate
from recursum.service.engine.pipeline.generate import fit_prompt, generate_batched, printable
from recursum.service.engine.pipeline.prompts import chunk_prompt
from recursum.service.engine.pipeline.results import GenerationRequest, GenerationSettings, GenerationStats

SETTINGS = GenerationSettings(max_new_tokens=8)


@pytest.fixture(scope="module")
def runtime(tiny_model_dir):
    return load_runtime(ModelSpec(base=str(tiny_model_dir), quantization="none", dtype="float32"))


def _requests(lengths: list[int]) -> list[GenerationRequest]:
    return [GenerationRequest(key=f"r{i}", adapter=None, prompt=chunk_prompt("Alice ran. " * n))
            for i, n in enumerate(lengths)]


def test_results_come_back_in_request_order_whatever_the_batching(runtime):
    requests = _requests([30, 2, 15, 7, 22])
    results = generate_batched(runtime, requests, SETTINGS, batch_size=2)
    assert [r.key for r in results] == [r.key for r in requests]


def test_a_height_runs_as_few_batches_not_one_call_per_node(runtime):
    stats = GenerationStats()
    generate_batched(runtime, _requests([5] * 7), SETTINGS, batch_size=4, stats=stats)
    assert stats.batches == 2
    assert stats.sequences == 7


def test_length_sorting_keeps_padding_small(runtime):
    lengths = [40, 1, 40, 1, 40, 1, 40, 1]
    sorted_stats, mixed_stats = GenerationStats(), GenerationStats()
    generate_batched(runtime, _requests(lengths), SETTINGS, batch_size=4, stats=sorted_stats)
    # With sorting, short prompts share a batch: padding is a small share of the input.
    assert sorted_stats.padded_tokens - sorted_stats.prompt_tokens < 0.1 * sorted_stats.prompt_tokens
    generate_batched(runtime, _requests(lengths), SETTINGS, batch_size=8, stats=mixed_stats)
    assert mixed_stats.padded_tokens > sorted_stats.padded_tokens


def test_batched_greedy_output_equals_one_at_a_time(runtime):
    requests = _requests([12, 3, 25])
    batched = generate_batched(runtime, requests, SETTINGS, batch_size=3)
    single = generate_batched(runtime, requests, SETTINGS, batch_size=1)
    assert [r.text for r in batched] == [r.text for r in single]


def test_prompts_longer_than_the_context_window_are_trimmed_to_fit(runtime):
    ids, truncated = fit_prompt(runtime, chunk_prompt("The whale swam on. " * 400), 16)
    assert truncated
    assert len(ids) + 16 <= runtime.context_window


def test_context_is_trimmed_before_the_passage(runtime):
    prompt = chunk_prompt("The passage itself. " * 20, context="Earlier text. " * 400)
    ids, truncated = fit_prompt(runtime, prompt, 16)
    assert truncated
    assert prompt.passage in runtime.tokenizer.decode(ids)


def test_a_summary_length_that_fills_the_window_is_a_config_error(runtime):
    with pytest.raises(ConfigError, match="summary length"):
        fit_prompt(runtime, chunk_prompt("short"), runtime.context_window)


def test_withdrawn_requests_are_skipped_and_the_rest_still_generated(runtime):
    withdrawn = {"r1"}
    stats = GenerationStats()
    results = generate_batched(runtime, _requests([3, 3, 3]), SETTINGS, batch_size=1, stats=stats,
                               wanted=lambda key: key not in withdrawn)
    assert [r.key for r in results] == ["r0", "r2"]
    assert stats.batches == 2


def test_nothing_wanted_generates_nothing(runtime):
    assert generate_batched(runtime, _requests([3, 3]), SETTINGS, batch_size=1,
                            wanted=lambda key: False) == []


def test_a_template_longer_than_the_window_is_a_config_error_not_a_hang(runtime):
    long_window_left = runtime.context_window - 70  # leaves the minimum 64-token input budget + a little
    with pytest.raises(ConfigError, match="template alone"):
        fit_prompt(runtime, chunk_prompt("Alice ran. " * 50, context="Before. " * 50), long_window_left)


def test_generated_text_keeps_no_control_characters():
    assert printable(" Alice\x00 ran\x07 home.\n\tThe end.\x1b ") == "Alice ran home.\n\tThe end."


def test_the_memory_budget_cuts_batches_below_batch_size(runtime, monkeypatch):
    one_row = runtime.batch_memory.row_bytes(60, SETTINGS.max_new_tokens)
    monkeypatch.setattr(runtime.loaded, "batch_memory",
                        msgspec.structs.replace(runtime.batch_memory, budget_bytes=2 * one_row))
    stats = GenerationStats()
    generate_batched(runtime, _requests([5] * 6), SETTINGS, batch_size=6, stats=stats)
    assert max(stats.batch_sizes) <= 2
    assert stats.sequences == 6


def test_a_failing_batch_fails_only_its_own_requests(runtime, monkeypatch):
    real = generate._generate_one_batch

    def fails_on_r1(runtime, batch, *args):
        if any(request.key == "r1" for request, _, _ in batch):
            raise RuntimeError("CUDA error: an illegal memory access")
        return real(runtime, batch, *args)

    monkeypatch.setattr(generate, "_generate_one_batch", fails_on_r1)
    failed: list[str] = []
    results = generate_batched(runtime, _requests([3, 9, 20]), SETTINGS, batch_size=1,
                               on_failure=lambda keys, error: failed.extend(keys))
    assert failed == ["r1"]
    assert [r.key for r in results] == ["r0", "r2"]
    with pytest.raises(RuntimeError, match="illegal memory access"):  # no on_failure: the caller's error
        generate_batched(runtime, _requests([3, 9]), SETTINGS, batch_size=1)


def test_running_out_of_memory_splits_the_batch_and_loses_nothing(runtime, monkeypatch):
    real = generate._generate_one_batch

    def one_row_fits(runtime, batch, *args):
        if len(batch) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(runtime, batch, *args)

    monkeypatch.setattr(generate, "_generate_one_batch", one_row_fits)
    requests = _requests([3, 9, 20, 4])
    assert [r.key for r in generate_batched(runtime, requests, SETTINGS, batch_size=4)] == ["r0", "r1", "r2",
                                                                                           "r3"]


def test_every_batch_is_reported_as_it_finishes(runtime, monkeypatch):
    seen = []
    monkeypatch.setattr(runtime, "on_batch", seen.append)
    stats = GenerationStats()
    generate_batched(runtime, _requests([5, 5, 30]), SETTINGS, batch_size=2, stats=stats)
    assert len(seen) == stats.batches == 2
    assert sum(b.prompt_tokens for b in seen) == stats.prompt_tokens
    assert sum(b.generated_tokens for b in seen) == stats.generated_tokens
    assert all(b.decode_steps <= SETTINGS.max_new_tokens and b.prefill_seconds > 0 for b in seen)
