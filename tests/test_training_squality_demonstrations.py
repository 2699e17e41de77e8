"""SQuALITY's human plot summaries as chunk demonstrations, and `train sft --role` writing a bundle the
service loads."""

import json

import pytest
from click.testing import CliRunner
from conftest import shared_data

from recursum.service.cli.main import cli
from recursum.service.engine.models.bundle import read_manifest
from recursum.service.engine.models.runtime import load_runtime
from recursum.service.engine.models.spec import ModelSpec
from recursum.service.engine.pipeline.chunking import chunk_document
from recursum.service.engine.pipeline.commentary import is_meta_commentary
from recursum.service.engine.pipeline.roster import invented_names, vocabulary
from recursum.service.engine.pipeline.sentences import split_sentences
from recursum.training.datasets import Demonstration, read_jsonl, split_by_group, write_jsonl

STORIES = 2


@pytest.fixture(scope="module")
def stories(tmp_path_factory) -> tuple[list[dict], list[Demonstration]]:
    """The first stories of SQuALITY train and the demonstrations the CLI makes of them."""
    lines = shared_data("references/squality/train.jsonl").read_text().splitlines()[:STORIES]
    folder = tmp_path_factory.mktemp("squality")
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
    out = folder / "chunks.jsonl"
    result = CliRunner().invoke(cli, ["train", "data", "squality-chunks", "--references",
                                      str(folder / "train.jsonl"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in lines], list(read_jsonl(out, Demonstration))


def test_each_demonstration_is_a_service_chunk_told_in_human_sentences(stories):
    records, demonstrations = stories
    assert len(demonstrations) > 10 * STORIES
    for record in records:
        story = record["document"]
        group = f"squality:{record['metadata']['passage_id']}"
        chunks = {story[c.span.start : c.span.end] for c in chunk_document(story, 600)}
        plot = next(q for q in record["questions"] if q["question_number"] == 1)
        told = {" ".join(s.split()) for r in plot["responses"] for s in split_sentences(r["response_text"])}
        human = sorted(told, key=len, reverse=True)
        mine = [d for d in demonstrations if d.group == group]
        assert mine
        for demonstration in mine:
            assert (demonstration.task, demonstration.height) == ("chunk", 0)
            assert demonstration.input in chunks
            assert demonstration.source.startswith("squality:reference:")
            sentences = split_sentences(demonstration.output)
            assert 1 <= len(sentences) <= 5
            remaining = demonstration.output
            for sentence in human:
                remaining = remaining.replace(sentence, "")
            assert not remaining.strip(), "the output is the human summaries' own sentences"
            assert not any(map(is_meta_commentary, sentences))
            assert not invented_names(demonstration.output, vocabulary(demonstration.input))


def test_a_split_of_the_demonstrations_never_mixes_stories(stories):
    _, demonstrations = stories
    train, held_out = split_by_group(demonstrations, held_out_fraction=0.5, seed=0)
    assert train and held_out
    assert not {d.group for d in train} & {d.group for d in held_out}


def test_a_missing_references_file_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli, ["train", "data", "squality-chunks", "--references",
                                      str(tmp_path / "absent.jsonl"), "--out", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 2 and "absent.jsonl" in result.output


@pytest.mark.integration
def test_sft_with_a_role_writes_a_bundle_the_service_loads(stories, tiny_model_dir, tmp_path):
    _, demonstrations = stories
    data, bundle = tmp_path / "short.jsonl", tmp_path / "bundle"
    write_jsonl(data, sorted(demonstrations, key=lambda d: len(d.output))[:8])  # a 512-token window
    result = CliRunner().invoke(cli, ["train", "sft", "--data", str(data), "--role", "chunk", "--base",
                                      str(tiny_model_dir), "--quantization", "none", "--max-steps", "2",
                                      "--out", str(bundle)])
    assert result.exit_code == 0, result.output
    manifest = read_manifest(bundle)
    (entry,) = manifest.adapters
    assert (entry.role, entry.path, entry.heights, entry.method) == ("chunk", "chunk", [0], "sft")
    assert entry.metrics["examples"] > 0 and len(entry.data_sha256) == 64
    runtime = load_runtime(ModelSpec(base=str(tiny_model_dir), quantization="none", bundle=str(bundle)))
    assert runtime.adapter_for("chunk").startswith("chunk-") and runtime.adapter_for("merge") is None
