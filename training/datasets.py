"""Training data: demonstrations and comparisons as msgspec structs, one JSON object a line.

Tasks say which prompt and adapter an example trains:

- `chunk`: height 0, the input is a raw passage;
- `merge`: height >= 1, the input is consecutive child summaries;
- `root`: a summary of a whole document however it was made (height `None`), e.g. SQuALITY's
  human and BART summaries of whole stories. Calling them `merge` would lie about the input
  (raw text, not child summaries) and mix two input distributions in one reward model;
- `helper:<kind>`: a helper report (`helper:critique`) about the node at `height`, if known.

`group` (the story or book id) is what `split_by_group` keeps on one side of a split, so that no
held-out figure is measured on a story the model was trained on.
"""

import random
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import msgspec
from msgspec import Meta

TASK_PATTERN = r"^(chunk|merge|root|helper:[a-z][a-z0-9_-]*)$"
Task = Annotated[str, Meta(pattern=TASK_PATTERN, description="chunk | merge | root | helper:<kind>")]
Height = Annotated[int, Meta(ge=0)]
Text = Annotated[str, Meta(min_length=1)]
Confidence = Annotated[float, Meta(ge=0.0, le=1.0)]
Preference = Literal[0, 1, "tie"]


def _check_task_height(task: str, height: int | None) -> None:
    if task == "chunk" and height != 0:
        raise ValueError(f"task chunk needs height 0, got {height}")
    if task == "merge" and (height is None or height < 1):
        raise ValueError(f"task merge needs height >= 1, got {height}")
    if task == "root" and height is not None:
        raise ValueError(f"task root has no height (null), got {height}")


def _check_not_blank(**texts: str) -> None:
    for name, text in texts.items():
        if not text.strip():
            raise ValueError(f"{name} is blank")


class Example(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What every training example has: the task, where in the tree, the prompt input, its group."""

    task: Task
    height: Height | None
    input: Text
    group: Text


class Demonstration(Example, kw_only=True, forbid_unknown_fields=True):
    """A good output for an input, for behavioural cloning (SFT)."""

    output: Text
    source: Text  # who or what wrote `output`: "squality:reference:10", "model:<fingerprint>", ...

    def __post_init__(self) -> None:
        _check_task_height(self.task, self.height)
        _check_not_blank(input=self.input, output=self.output)


class Comparison(Example, kw_only=True, forbid_unknown_fields=True):
    """An evaluator's preference between two outputs for one input (reward modelling, DPO)."""

    id: Text  # stable key: re-importing the same judgement must not duplicate it
    candidates: tuple[Text, Text]
    preferred: Preference
    confidence: Confidence | None = None  # None when the evaluator gave no confidence
    evaluator: Text  # "squality:<reviewer>" for people, "simulated:..." for the simulated labeler
    reports_seen: tuple[str, ...] = ()  # ids of the helper reports shown with the candidates
    policies: tuple[str, str] | None = None  # what wrote each candidate, when known ("bart", "human")
    created: datetime

    def __post_init__(self) -> None:
        _check_task_height(self.task, self.height)
        _check_not_blank(input=self.input, candidate_0=self.candidates[0], candidate_1=self.candidates[1])
        if self.candidates[0].strip() == self.candidates[1].strip():
            raise ValueError("the two candidates are identical")


Record = TypeVar("Record", Demonstration, Comparison)

_encoder = msgspec.json.Encoder()


def now() -> datetime:
    """The current time in UTC, as `created` stores it."""
    return datetime.now(UTC)


def read_jsonl(path: Path, record_type: type[Record]) -> Iterator[Record]:
    """Records from a JSONL file, lazily; raises `msgspec.ValidationError` naming the first bad line.

    Use `training.validate` to list every bad line instead.
    """
    decoder = msgspec.json.Decoder(record_type)
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield decoder.decode(line)
            except msgspec.DecodeError as error:
                raise type(error)(f"{path}:{number}: {error}") from None


def write_jsonl(path: Path, records: Iterable[Demonstration | Comparison]) -> int:
    """Write records one per line, replacing `path` only once all are written; returns the count."""
    partial = path.with_name(path.name + ".partial")  # an interrupted write leaves the old file intact
    count = 0
    try:
        with partial.open("wb") as out:
            for record in records:
                out.write(_encoder.encode(record) + b"\n")
                count += 1
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return count


def split_by_group(
    items: Sequence[Record], held_out_fraction: float, seed: int
) -> tuple[list[Record], list[Record]]:
    """(train, held_out) with whole groups on one side: about `held_out_fraction` of the groups
    (at least one when the fraction is positive and there are two groups or more) are held out."""
    if not 0.0 <= held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in [0, 1), got {held_out_fraction}")
    groups = sorted({item.group for item in items})
    count = round(len(groups) * held_out_fraction)
    if held_out_fraction > 0 and len(groups) >= 2:
        count = min(max(count, 1), len(groups) - 1)
    held_out = set(random.Random(seed).sample(groups, count))
    return (
        [item for item in items if item.group not in held_out],
        [item for item in items if item.group in held_out],
    )
