"""Check a training JSONL file line by line and list every bad line, instead of failing on the first.

A line is bad when it is not UTF-8, not JSON, does not fit the schema (wrong types, empty or blank
texts, identical candidates, a task and height that do not agree), or would overflow the model's
context: input plus the longest output, in the engine's cl100k tokens.
"""

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import msgspec

from recursum.service.engine.pipeline.tokens import count_tokens
from recursum.training.datasets import Comparison, Demonstration

RecordKind = Literal["comparison", "demonstration"]
DEFAULT_MAX_INPUT_TOKENS = 8192


@dataclass(frozen=True)
class BadLine:
    """One rejected line: its 1-based number, the kind of problem (for the summary) and the detail."""

    line: int
    problem: str
    reason: str


@dataclass
class ValidationReport:
    """What `validate_file` found."""

    kind: RecordKind
    lines: int = 0
    bad: list[BadLine] = field(default_factory=list)

    @property
    def good(self) -> int:
        return self.lines - len(self.bad)

    def problem_counts(self) -> Counter[str]:
        return Counter(bad.problem for bad in self.bad)


def detect_kind(path: Path) -> RecordKind:
    """`comparison` if the first JSON object line has `candidates`, else `demonstration`."""
    with path.open("rb") as lines:
        for line in lines:
            try:
                first = msgspec.json.decode(line)
            except msgspec.DecodeError:
                continue
            if isinstance(first, dict):
                return "comparison" if "candidates" in first else "demonstration"
    return "comparison"


def validate_file(
    path: Path, kind: RecordKind, max_input_tokens: int = DEFAULT_MAX_INPUT_TOKENS
) -> ValidationReport:
    """Every bad line of a JSONL file of `kind` records; blank lines are skipped, not counted."""
    decoder = msgspec.json.Decoder(Comparison if kind == "comparison" else Demonstration)
    report = ValidationReport(kind)
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            report.lines += 1
            problem = _check_line(raw, decoder, max_input_tokens)
            if problem is not None:
                report.bad.append(BadLine(number, *problem))
    return report


def _check_line(raw: bytes, decoder: msgspec.json.Decoder, max_tokens: int) -> tuple[str, str] | None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return "not UTF-8", f"not UTF-8 text (byte {error.start} of the line)"
    try:
        record = decoder.decode(raw)
    except msgspec.ValidationError as error:
        return "schema", str(error)
    except msgspec.DecodeError as error:
        return "invalid JSON", f"invalid JSON: {error}"
    outputs = record.candidates if isinstance(record, Comparison) else (record.output,)
    tokens = count_tokens(record.input) + max(count_tokens(text) for text in outputs)
    if tokens > max_tokens:
        return "too long", (
            f"input and longest output are {tokens} tokens, over --max-input-tokens {max_tokens}"
        )
    return None
