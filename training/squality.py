"""Import SQuALITY's human evaluation (CC BY 4.0, `../shared/data/comparisons/`) as `Comparison`s.

Each pairwise row (one reviewer's ranking of two of three summaries of one story for one question)
becomes a `root` comparison: the summaries cover whole stories and were not made by a tree, so they
have no height. `input` is the question and the whole story, formatted by `squality_input`, so a
row stands alone; the story alone is ~5-10k cl100k tokens, more than a small model's context, and
what the reward model actually reads (truncation, chunk summaries) is the trainer's choice, made
from this full text. `group` is the story (Gutenberg passage id), `evaluator` "squality:<reviewer>".
"""

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Literal

import msgspec

from recursum.service.engine.errors import ConfigError
from recursum.service.engine.pipeline.prompts import unwrap
from recursum.training.datasets import Comparison

DEFAULT_SOURCE = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "comparisons" / "squality_human_eval"
)


class _Summary(msgspec.Struct):
    text: str
    policy: str


class _Info(msgspec.Struct):
    passage_id: str
    question: str


class _PairwiseRow(msgspec.Struct):
    """The fields of `pairwise.jsonl` we use (its schema is in `SOURCES.md`)."""

    id: str
    info: _Info
    summaries: tuple[_Summary, _Summary]
    choice: Literal[0, 1]
    worker: str


class _StoryMetadata(msgspec.Struct):
    passage_id: str


class _Story(msgspec.Struct):
    metadata: _StoryMetadata
    document: str


class SourceDataMissing(ConfigError):
    """Raised when the SQuALITY files are not where the import looks for them."""


def squality_input(question: str, story: str) -> str:
    """The input of a SQuALITY comparison: the question, then the story with paragraphs unwrapped."""
    return f"Question: {question}\n\nStory:\n{unwrap(story)}"


def split_squality_input(text: str) -> tuple[str, str]:
    """(question, story) of a `squality_input` text, its inverse: for trainers that rebuild what the
    reward model reads (the question alone, a truncated story)."""
    head, marker, story = text.partition("\n\nStory:\n")
    if not marker or not head.startswith("Question: "):
        raise ValueError("not a SQuALITY input: expected 'Question: ...' then a 'Story:' section")
    return head.removeprefix("Question: "), story


def load_stories(source: Path) -> dict[str, str]:
    """Story text by passage id, from `stories.jsonl`."""
    decoder = msgspec.json.Decoder(_Story)
    with _required(source / "stories.jsonl").open("rb") as lines:
        stories = (decoder.decode(line) for line in lines if line.strip())
        return {story.metadata.passage_id: story.document for story in stories}


def import_squality(source: Path, created: datetime) -> Iterator[Comparison]:
    """One `Comparison` per row of `pairwise.jsonl` (720 in the shared copy), in file order."""
    stories = load_stories(source)
    decoder = msgspec.json.Decoder(_PairwiseRow)
    with _required(source / "pairwise.jsonl").open("rb") as lines:
        for line in lines:
            if not line.strip():
                continue
            row = decoder.decode(line)
            story = stories.get(row.info.passage_id)
            if story is None:
                raise SourceDataMissing(f"{row.id}: story {row.info.passage_id} is not in stories.jsonl")
            yield Comparison(
                id=row.id,
                task="root",
                height=None,
                input=squality_input(row.info.question, story),
                group=row.info.passage_id,
                candidates=(row.summaries[0].text, row.summaries[1].text),
                preferred=row.choice,
                evaluator=f"squality:{row.worker}",
                policies=(row.summaries[0].policy, row.summaries[1].policy),
                created=created,
            )


def _required(path: Path) -> Path:
    if not path.is_file():
        raise SourceDataMissing(
            f"{path} not found: pass --source DIR holding SQuALITY's pairwise.jsonl and stories.jsonl "
            f"(the shared copy lives in {DEFAULT_SOURCE})"
        )
    return path
