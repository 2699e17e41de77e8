"""`recursum train ...`: real runs on a tiny model and one-line errors (exit 1) for bad data or config."""

import json

import msgspec
import pytest
from click.testing import CliRunner

from recursum.service.cli.main import cli
from recursum.training.datasets import Comparison, now, write_jsonl

PASSAGE = "The Rabbit took a watch out of its pocket. " * 3


def _comparisons(path, preferred=0, count=10):
    write_jsonl(path, [Comparison(id=f"c{i}", task="chunk", height=0, input=PASSAGE, group=f"g{i % 5}",
                                  candidates=("Alice was tired.", "Victor fled."), preferred=preferred,
                                  evaluator="simulated:test", created=now()) for i in range(count)])
    return path


def _train(*args):
    return CliRunner().invoke(cli, ["train", *args])


@pytest.mark.integration
def test_train_reward_writes_an_adapter_and_prints_its_metrics(tiny_model_dir, tmp_path):
    data = _comparisons(tmp_path / "pairs.jsonl")
    result = _train("reward", "--data", str(data), "--out", str(tmp_path / "reward"),
                    "--base", str(tiny_model_dir), "--quantization", "none", "--max-steps", "2")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["train_pairs"] + metrics["held_out_pairs"] == 10
    assert metrics["held_out_accuracy"] is not None
    assert (tmp_path / "reward" / "reward_head.safetensors").is_file()


def test_train_reward_on_ties_only_is_a_one_line_error(tiny_model_dir, tmp_path):
    data = _comparisons(tmp_path / "ties.jsonl", preferred="tie")
    result = _train("reward", "--data", str(data), "--out", str(tmp_path / "r"),
                    "--base", str(tiny_model_dir), "--held-out", "0")
    assert result.exit_code == 1
    assert "every one is a tie" in result.output and "Traceback" not in result.output


def test_train_dpo_names_a_bad_line(tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_bytes(msgspec.json.encode({"task": "chunk"}) + b"\n")
    result = _train("dpo", "--data", str(data), "--out", str(tmp_path / "dpo"))
    assert result.exit_code == 1
    assert "bad.jsonl:1" in result.output and "train data validate" in result.output


def test_train_levels_names_the_bad_config_field(tmp_path):
    config = tmp_path / "levels.toml"
    config.write_text('max_height = -1\n[data]\nbooks = ["a.txt"]\n')
    result = _train("levels", "--config", str(config), "--out", str(tmp_path / "bundle"))
    assert result.exit_code == 1
    assert "max_height" in result.output and "Traceback" not in result.output


def test_summarize_refuses_a_directory_that_is_not_a_bundle(tmp_path):
    book = tmp_path / "book.txt"
    book.write_text(PASSAGE)
    result = CliRunner().invoke(cli, ["summarize", str(book), "--adapters", str(tmp_path)])
    assert result.exit_code == 1
    assert "not an adapter bundle" in result.output
