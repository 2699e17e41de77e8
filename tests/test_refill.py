from collections import defaultdict

import msgspec
import pytest
import torch

from recursum.service.engine.models.runtime import load_runtime
from recursum.service.engine.models.spec import ModelSpec
from recursum.service.engine.pipeline import refill
from recursum.service.engine.pipeline.generate import fit_prompt, generate_batched
from recursum.service.engine.pipeline.prompts import chunk_prompt
from recursum.service.engine.pipeline.refill import generate_refilling
from recursum.service.engine.pipeline.results import (
    GenerationRequest,
    GenerationResult,
    GenerationSettings,
    GenerationStats,
)

SETTINGS = GenerationSettings(max_new_tokens=24)
BATCH = 3
SENTENCES = [  # (sentence, repeats): prompts of very different lengths
    ("The whale swam on. ", 12), ("Alice was beginning to get very tired. ", 6),
    ("The Rabbit took a watch out of its pocket. ", 1), ("Victor Frankenstein built a creature. ", 4),
    ("Elizabeth Bennet met Mr. Darcy. ", 2), ("Alice ran. ", 3), ("He thought him proud. ", 8),
]
REQUESTS = [GenerationRequest(key=f"r{i}", adapter=None, prompt=chunk_prompt(sentence * repeats))
            for i, (sentence, repeats) in enumerate(SENTENCES)]


@pytest.fixture(scope="module")
def runtime(tiny_model_dir):
    """The tiny model, with rows that end at different steps.

    The random model writes much the same tokens after any prompt, so every row would run to
    max_new_tokens together and no row would ever be refilled mid-batch. A token it first writes at
    different steps for different prompts becomes an end-of-sequence token, for `generate` and the refill
    loop alike.
    """
    runtime = load_runtime(ModelSpec(base=str(tiny_model_dir), quantization="none", dtype="float32"))
    first_steps: dict[int, set[int]] = defaultdict(set)
    for request in REQUESTS:
        ids, _ = fit_prompt(runtime, request.prompt, SETTINGS.max_new_tokens)
        output = runtime.model.generate(
            torch.tensor([ids]), max_new_tokens=SETTINGS.max_new_tokens, do_sample=False, top_p=None,
            top_k=None, repetition_penalty=SETTINGS.repetition_penalty,
            no_repeat_ngram_size=SETTINGS.no_repeat_ngram_size, pad_token_id=runtime.tokenizer.pad_token_id)
        written = output[0, len(ids) :].tolist()
        for token in set(written):
            first_steps[token].add(written.index(token))
    stop = max(first_steps, key=lambda token: len(first_steps[token]))
    runtime.model.generation_config.eos_token_id = [runtime.tokenizer.eos_token_id, stop]
    return runtime


@pytest.fixture(scope="module")
def one_at_a_time(runtime) -> dict[str, GenerationResult]:
    return {result.key: result for result in generate_batched(runtime, REQUESTS, SETTINGS, batch_size=1)}


class Queue:
    """A caller's refill: hands over what it holds, as many as asked, and remembers each ask."""

    def __init__(self, requests: list[GenerationRequest]) -> None:
        self.requests = list(requests)
        self.asks: list[tuple[int, int]] = []  # (rows asked for, requests handed over)

    def __call__(self, n: int) -> list[GenerationRequest]:
        handed, self.requests = self.requests[:n], self.requests[n:]
        self.asks.append((n, len(handed)))
        return handed


def _run(runtime, **kwargs) -> tuple[dict[str, GenerationResult], Queue]:
    results: dict[str, GenerationResult] = {}
    queue = Queue(REQUESTS[BATCH:])
    generate_refilling(runtime, REQUESTS[:BATCH], SETTINGS, BATCH, refill=queue,
                       on_result=lambda result: results.__setitem__(result.key, result), **kwargs)
    return results, queue


def test_refilled_greedy_output_equals_one_at_a_time(runtime, one_at_a_time):
    assert len({result.generated_tokens for result in one_at_a_time.values()}) > 1, "rows must end unevenly"
    results, _ = _run(runtime)
    assert results == one_at_a_time


def test_free_rows_are_refilled_while_others_still_run(runtime):
    stats = GenerationStats()
    _, queue = _run(runtime, stats=stats)
    assert any(0 < asked < BATCH and handed for asked, handed in queue.asks)
    assert max(stats.batch_sizes) == BATCH
    assert stats.sequences == len(REQUESTS)


def test_sampling_follows_the_seed(runtime):
    sampling = msgspec.structs.replace(SETTINGS, temperature=1.0)
    runs = []
    for seed in (1, 1, 2):
        results: list[GenerationResult] = []
        generate_refilling(runtime, REQUESTS, msgspec.structs.replace(sampling, seed=seed), BATCH,
                           on_result=results.append)
        runs.append(sorted((r.key, r.text) for r in results))
    assert runs[0] == runs[1] != runs[2]


def test_a_withdrawn_row_gets_no_result_and_the_rest_finish(runtime, one_at_a_time):
    withdrawn: set[str] = set()
    results: dict[str, GenerationResult] = {}

    def on_result(result: GenerationResult) -> None:
        if not results:  # the first row to end withdraws the others it started with, still running
            withdrawn.update(request.key for request in REQUESTS[1:BATCH])
        results[result.key] = result

    queue = Queue(REQUESTS[BATCH:])
    generate_refilling(runtime, REQUESTS[:BATCH], SETTINGS, BATCH, on_result=on_result,
                       wanted=lambda key: key not in withdrawn, refill=queue)
    first_to_end = one_at_a_time["r0"].generated_tokens
    assert all(one_at_a_time[key].generated_tokens > first_to_end for key in withdrawn)  # withdrawn mid-row
    assert results == {key: result for key, result in one_at_a_time.items() if key not in withdrawn}


def test_a_failing_step_fails_the_rows_in_flight_and_the_rest_still_run(runtime, monkeypatch):
    real, steps = refill._RunningBatch.step, []

    def fails_once(batch):
        steps.append([row.request.key for row in batch.rows])
        if len(steps) == 3:
            raise RuntimeError("CUDA error: an illegal memory access")
        return real(batch)

    monkeypatch.setattr(refill._RunningBatch, "step", fails_once)
    failed: list[str] = []
    results, _ = _run(runtime, on_failure=lambda keys, error: failed.extend(keys))
    assert failed == steps[2]
    assert sorted(failed + list(results)) == sorted(request.key for request in REQUESTS)
    steps.clear()
    with pytest.raises(RuntimeError, match="illegal memory access"):  # no on_failure: the caller's error
        _run(runtime)


def test_running_out_of_memory_halves_the_batch_and_loses_nothing(runtime, one_at_a_time, monkeypatch):
    real = refill._RunningBatch.step

    def one_row_fits(batch):
        if len(batch.rows) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(batch)

    monkeypatch.setattr(refill._RunningBatch, "step", one_row_fits)
    stats = GenerationStats()
    results, _ = _run(runtime, stats=stats)
    assert results == one_at_a_time
    assert stats.batch_sizes[-1] == 1


def test_batch_records_add_up_to_the_stats(runtime, monkeypatch):
    records = []
    monkeypatch.setattr(runtime, "on_batch", records.append)
    stats = GenerationStats()
    results, _ = _run(runtime, stats=stats)
    assert len(records) == stats.batches > 1
    assert sum(r.sequences for r in records) == stats.sequences == len(REQUESTS)
    assert sum(r.prompt_tokens for r in records) == stats.prompt_tokens == sum(
        r.prompt_tokens for r in results.values())
    assert sum(r.generated_tokens for r in records) == stats.generated_tokens == sum(
        r.generated_tokens for r in results.values())
    assert sum(r.prefill_seconds for r in records) == pytest.approx(stats.prefill_seconds)
    assert sum(r.decode_seconds for r in records) == pytest.approx(stats.decode_seconds)
    assert sum(r.truncated for r in records) == 0
    assert all(r.decode_steps <= SETTINGS.max_new_tokens for r in records)


def test_rows_with_different_adapters_share_one_batch_and_each_runs_its_own(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    adapter = tmp_path / "chunk"
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), lora).save_pretrained(adapter)
    runtime = load_runtime(ModelSpec(base=str(tiny_model_dir), quantization="none", dtype="float32",
                                     adapters={"chunk": str(adapter)}))
    chunk = runtime.adapter_for("chunk")
    requests = [msgspec.structs.replace(request, adapter=chunk if i % 2 else None)
                for i, request in enumerate(REQUESTS[:4])]
    alone = {}
    for name in (chunk, None):
        with runtime.using(name):
            mine = [request for request in requests if request.adapter == name]
            alone |= {r.key: r.text for r in generate_batched(runtime, mine, SETTINGS, batch_size=1)}
    shared = {}
    generate_refilling(runtime, requests, SETTINGS, len(requests),
                       on_result=lambda result: shared.__setitem__(result.key, result.text))
    assert shared == alone
    assert alone["r1"] != generate_batched(runtime, [msgspec.structs.replace(requests[1], adapter=None)],
                                           SETTINGS, batch_size=1)[0].text, "the adapter changes the output"
