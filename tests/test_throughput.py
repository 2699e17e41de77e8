"""The replica's measured throughput, which estimates divide by."""

import msgspec
from fake_engine import FakeEngine

from recursum.service.engine.pipeline.results import BatchRecord
from recursum.service.jobs.throughput import Throughput


def _batch(prompt: int, generated: int, seconds: float) -> BatchRecord:
    return BatchRecord(sequences=4, prompt_tokens=prompt, generated_tokens=generated, decode_steps=10,
                       prefill_seconds=seconds, decode_seconds=seconds, truncated=0)


def test_the_probe_seeds_the_rates_and_the_first_batch_replaces_them():
    throughput = Throughput()
    probe = msgspec.structs.replace(FakeEngine().describe(), prefill_tokens_per_second=500.0,
                            decode_tokens_per_second=20.0)
    throughput.seed(probe)
    assert throughput.basis == "probe" and throughput.seconds(1000, 40) == 1000 / 500 + 40 / 20
    throughput.observe(_batch(prompt=1000, generated=100, seconds=1.0))
    assert throughput.basis == "measured" and throughput.seconds(1000, 100) == 2.0


def test_later_batches_move_the_rates_a_fifth_of_the_way():
    throughput = Throughput()
    throughput.observe(_batch(prompt=1000, generated=100, seconds=1.0))
    throughput.observe(_batch(prompt=2000, generated=200, seconds=1.0))
    assert throughput.prefill == 1200.0 and throughput.decode == 120.0


def test_summary_length_follows_how_full_the_outputs_ran():
    throughput = Throughput()
    assert throughput.summary_length(200) is None  # before any batch: the estimate takes full length
    half_full = msgspec.structs.replace(_batch(prompt=1000, generated=200, seconds=1.0), max_new_tokens=100)
    throughput.observe(half_full)
    assert throughput.summary_length(300) == 150.0  # 4 rows wrote 200 of 400 tokens: half full
