"""How fast this replica generates, so an estimate can say how long a document would take.

Seeded at start by the model's probe (one short sequence: batched decoding runs faster), then moved by
every generate call this replica finishes, as an exponential moving average of tokens per second.
"""

import threading

from recursum.schemas.jobs import ThroughputBasis
from recursum.service.engine.interface import Diagnosis
from recursum.service.engine.pipeline.results import BatchRecord

WEIGHT = 0.2  # the newest batch's share of the average: a few batches after a change of load dominate


class Throughput:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.prefill: float | None = None  # prompt tokens a second
        self.decode: float | None = None  # generated tokens a second, all rows of a batch together
        self.basis: ThroughputBasis = "none"  # "probe" once seeded, "measured" once a batch ran
        self.fill: float | None = None  # generated tokens over the rows' limit: how full outputs run

    def seed(self, probe: Diagnosis) -> None:
        """Start from the model's probe until a batch has run."""
        with self._lock:
            usable = probe.prefill_tokens_per_second > 0 and probe.decode_tokens_per_second > 0
            if self.basis == "none" and usable:
                self.prefill, self.decode = probe.prefill_tokens_per_second, probe.decode_tokens_per_second
                self.basis = "probe"

    def observe(self, batch: BatchRecord) -> None:
        """Move the rates towards what `batch` achieved."""
        if batch.prefill_seconds <= 0 or batch.decode_seconds <= 0 or not batch.generated_tokens:
            return
        with self._lock:
            if batch.max_new_tokens:
                fill = batch.generated_tokens / (batch.sequences * batch.max_new_tokens)
                self.fill = fill if self.fill is None else (1 - WEIGHT) * self.fill + WEIGHT * fill
            self.prefill = _moved(self.prefill, batch.prompt_tokens / batch.prefill_seconds, self.basis)
            self.decode = _moved(self.decode, batch.generated_tokens / batch.decode_seconds, self.basis)
            self.basis = "measured"

    def summary_length(self, limit: int) -> float | None:
        """The tokens a summary limited to `limit` is expected to take here; None before any batch."""
        with self._lock:
            return None if self.fill is None else self.fill * limit

    def seconds(self, prompt_tokens: int, generated_tokens: int) -> float | None:
        """The time to read and write that many tokens at the current rates; None before any rate."""
        with self._lock:
            if self.prefill is None or self.decode is None:
                return None
            return prompt_tokens / self.prefill + generated_tokens / self.decode


def _moved(average: float | None, sample: float, basis: str) -> float:
    # The first measured batch replaces the probe outright: a batch-1 probe says little about batches.
    return sample if average is None or basis != "measured" else (1 - WEIGHT) * average + WEIGHT * sample
