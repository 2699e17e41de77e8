"""What a training run reports while it trains: the progress bar on stderr, the per-step JSONL beside the
adapter, early stopping that really stops, TensorBoard logs; and the CLI's flags for them."""

import pytest
from click.testing import CliRunner

from recursum.training.callbacks import METRICS_FILE, read_metrics_log
from recursum.training.cli import train
from recursum.training.datasets import Demonstration, write_jsonl
from recursum.training.modeling import LoraSettings
from recursum.training.sft import SftTraining, train_sft

pytestmark = pytest.mark.integration  # every test trains

PASSAGE = "The Rabbit took a watch out of its waistcoat pocket and hurried on. " * 2


def _demos(count: int, group: str = "g") -> list[Demonstration]:
    return [Demonstration(task="chunk", height=0, input=PASSAGE, output="The Rabbit hurried on.",
                          group=f"{group}{i}", source="test") for i in range(count)]


def _config(tiny_model_dir, **changes) -> SftTraining:
    return SftTraining(lora=LoraSettings(base=str(tiny_model_dir), quantization="none"), batch_size=2,
                       **changes)


def test_every_step_is_logged_as_json_and_the_bar_shows_loss_on_stderr(tiny_model_dir, tmp_path, capfd):
    out = tmp_path / "sft"
    train_sft(_demos(8), out, _config(tiny_model_dir, max_steps=4))
    records = read_metrics_log(out / METRICS_FILE)
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4]
    assert all(r["loss"] > 0 and "learning_rate" in r and r["time"] > 0 for r in records if "loss" in r)
    captured = capfd.readouterr()
    assert "4/4" in captured.err and "loss=" in captured.err, captured.err[-500:]
    assert "{'loss'" not in captured.out, "transformers' own printer is replaced"


def test_early_stopping_stops_once_the_held_out_loss_stops_improving(tiny_model_dir, tmp_path):
    out = tmp_path / "stopped"
    # A learning rate too small to move a weight: the held-out loss never improves on the first evaluation.
    config = _config(tiny_model_dir, max_steps=40, learning_rate=1e-30, early_stop=2, eval_steps=1)
    train_sft(_demos(8), out, config, held_out=_demos(4, group="held"))
    records = read_metrics_log(out / METRICS_FILE)
    evaluations = [r for r in records if "eval_loss" in r]
    assert len(evaluations) == 3, "the first evaluation sets the best, two more without improvement stop it"
    assert max(r["step"] for r in records) == 3 < 40
    assert (out / "adapter_config.json").is_file()


def test_early_stopping_without_held_out_data_is_refused(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="held-out data"):
        train_sft(_demos(4), tmp_path / "x", _config(tiny_model_dir, max_steps=2, early_stop=2))


def test_tensorboard_logs_are_written_beside_the_adapter(tiny_model_dir, tmp_path):
    pytest.importorskip("tensorboardX")
    out = tmp_path / "tb"
    train_sft(_demos(4), out, _config(tiny_model_dir, max_steps=2, report_to=("tensorboard",)))
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))


def test_the_cli_early_stops_on_held_out_groups_and_logs_beside_the_adapter(tiny_model_dir, tmp_path):
    data = tmp_path / "demos.jsonl"
    write_jsonl(data, _demos(10))
    out = tmp_path / "cli-sft"
    result = CliRunner().invoke(train, [
        "sft", "--data", str(data), "--base", str(tiny_model_dir), "--quantization", "none",
        "--max-steps", "30", "--lr", "1e-30", "--batch-size", "2", "--early-stop", "1", "--eval-steps", "2",
        "--held-out", "0.3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    records = read_metrics_log(out / METRICS_FILE)
    assert max(r["step"] for r in records) == 4, "evaluated at steps 2 and 4, stopped at the first miss"
