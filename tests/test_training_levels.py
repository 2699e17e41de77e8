"""The level-by-level pipeline on a tiny model: stages run in order, an interrupted run resumes at
the first unfinished stage, and the bundle it writes loads in the service runtime (and only on the
base it was trained for)."""

import base64
import json
from pathlib import Path

import msgspec
import pytest
from hook_receiver import receiver
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from recursum.service.engine.errors import ModelError
from recursum.service.engine.helpers.verify_calibration import VerifyCalibration
from recursum.service.engine.models.bundle import read_manifest
from recursum.service.engine.models.runtime import load_runtime
from recursum.service.engine.models.spec import ModelSpec
from recursum.service.engine.pipeline.prompts import task_prompt, verify_prompt
from recursum.training.datasets import Comparison, now, write_jsonl
from recursum.training.dpo import DpoTraining
from recursum.training.helper_training import (
    PlantedSummary,
    critique_comparisons,
    critique_outcome,
    reference_critique,
    reference_demonstrations,
    train_helper_stage,
)
from recursum.training.levels import (
    STATE_FILE,
    LevelsConfig,
    LevelsData,
    level_data,
    load_config,
    run_levels,
    stages,
)
from recursum.training.modeling import LoraSettings
from recursum.training.reward import RewardTraining
from recursum.training.sft import SftTraining
from recursum.training.stage_hook import StageHook

BOOK = (
    "Alice sat by the river with her sister. The White Rabbit ran past, looking at his watch. "
    "Alice followed the Rabbit down a deep hole. She fell slowly past shelves of jars. "
    "At the bottom Alice found a hall with many locked doors. The Rabbit was gone. "
) * 6


def tiny_config(tiny_model_dir: Path, book: Path, **changes) -> LevelsConfig:
    lora = LoraSettings(base=str(tiny_model_dir), quantization="none")
    config = LevelsConfig(
        max_height=1, helper=False, lora=lora,
        data=LevelsData(books=[str(book)], comparisons_per_level=6, best_of=2, chunk_tokens=64,
                        summary_tokens=16, max_chars=3000),
        reward=RewardTraining(max_steps=2, batch_size=2), dpo=DpoTraining(max_steps=2, batch_size=2),
        helper_sft=SftTraining(max_steps=2, batch_size=2),
    )
    return msgspec.structs.replace(config, **changes)


@pytest.fixture
def book(tmp_path) -> Path:
    path = tmp_path / "alice.txt"
    path.write_text(BOOK)
    return path


@pytest.mark.integration
def test_levels_run_every_stage_in_order_and_write_a_loadable_bundle(tiny_model_dir, book, tmp_path):
    out = tmp_path / "bundle"
    manifest = run_levels(tiny_config(tiny_model_dir, book), out)
    assert json.loads((out / STATE_FILE).read_text())["finished"] == [
        "synth:0", "reward:0", "policy:0", "synth:1", "reward:1", "policy:1"]
    assert {e.role: e.heights for e in manifest.adapters} == {"reward": [0, 1], "chunk": [0], "merge": [1]}
    assert all(c.task == "merge" for c in _read(level_data(out, 1)))
    runtime = load_runtime(ModelSpec(base=str(tiny_model_dir), quantization="none", bundle=str(out)))
    assert set(runtime.info.adapters) == {"reward", "chunk", "merge"} and runtime.reward_head is not None


@pytest.mark.integration
def test_an_interrupted_run_resumes_at_the_first_unfinished_stage_and_signs_each_stage_hook(
        tiny_model_dir, book, tmp_path):
    out = tmp_path / "bundle"
    config = tiny_config(tiny_model_dir, book, max_height=0)
    secret = "whsec_" + base64.b64encode(b"stage-hook-secret-of-32-bytes!!!").decode()
    with receiver() as (url, received):
        run_levels(config, out, stop_after="reward:0", on_stage=StageHook(url, secret))
        assert [e.role for e in read_manifest(out).adapters] == ["reward"]
        synth_written = level_data(out, 0).stat().st_mtime_ns
        manifest = run_levels(config, out, on_stage=StageHook(url, secret))
    assert level_data(out, 0).stat().st_mtime_ns == synth_written  # synth:0 was not redone
    assert {e.role for e in manifest.adapters} == {"reward", "chunk"}
    stages_told = [Webhook(secret).verify(body, headers) for body, headers in received]
    assert [told["stage"] for told in stages_told] == ["synth:0", "reward:0", "policy:0"]
    assert stages_told[0]["comparisons"] > 0 and stages_told[0]["adapter"] is None
    assert "held_out_accuracy" in stages_told[1]["adapter"]["metrics"]
    assert stages_told[2]["remaining"] == [] and stages_told[2]["adapter"]["role"] == "chunk"
    forged = dict(received[0][1]) | {"webhook-signature": "v1,AAAA"}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(received[0][0], forged)


@pytest.mark.integration
def test_a_bundle_for_another_base_model_is_refused(tiny_model_dir, book, tmp_path):
    out = tmp_path / "bundle"
    run_levels(tiny_config(tiny_model_dir, book, max_height=0, policy="none"), out)
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps(manifest | {"base_fingerprint": "0" * 64}))
    with pytest.raises(ModelError, match="trained on base model"):
        load_runtime(ModelSpec(base=str(tiny_model_dir), quantization="none", bundle=str(out)))


def test_levels_config_reads_toml_and_names_bad_fields(tmp_path):
    good = tmp_path / "levels.toml"
    good.write_text('max_height = 2\n[data]\nbooks = ["a.txt"]\n')
    assert stages(load_config(good))[:3] == ["synth:0", "reward:0", "policy:0"]
    assert stages(load_config(good))[-1] == "helper"
    bad = tmp_path / "bad.toml"
    bad.write_text('max_height = "two"\n[data]\nbooks = []\n')
    with pytest.raises(ValueError, match="max_height"):
        load_config(bad)


SOURCE = "Alice followed the White Rabbit down the hole. The Rabbit looked at his watch and ran."
SUMMARY = ["Alice followed the Rabbit.", "The Queen of Hearts shouted at the cards.", "The Rabbit ran off."]
PLANTED = PlantedSummary(source=SOURCE, sentences=SUMMARY, index=1, kind="foreign", group="alice:0",
                         closest=["Alice followed the White Rabbit down the hole.", "",
                                  "The Rabbit looked at his watch and ran."])


def test_a_critique_that_finds_the_planted_sentence_outscores_one_that_invents_quotes():
    found = critique_outcome(reference_critique(PLANTED), PLANTED)
    invented = critique_outcome('UNSUPPORTED: "The Mad Hatter poured tea." - not in source', PLANTED)
    accusing = critique_outcome('UNSUPPORTED: "Alice followed the Rabbit." - wrong', PLANTED)
    assert found.found and found.score == 1.0
    assert invented.fabricated == 1 and accusing.false_items == 1
    assert found.score > accusing.score > invented.score


def test_reference_demonstrations_pair_the_planted_verdict_with_one_supported_sentence():
    planted, true = reference_demonstrations([PLANTED])
    assert (planted.task, planted.output) == ("helper:verify", "UNSUPPORTED")
    assert task_prompt(planted.task, planted.input) == verify_prompt(SUMMARY[1], "")
    assert true.output == "SUPPORTED" and SUMMARY[1] not in true.input


def test_critique_comparisons_prefer_the_reference_and_skip_equal_scores():
    comparisons = critique_comparisons([PLANTED], [["NONE", "NONE"]], evaluator="simulated:test")
    assert len(comparisons) == 1
    assert comparisons[0].task == "helper:critique"
    assert comparisons[0].candidates[comparisons[0].preferred] == reference_critique(PLANTED)


@pytest.mark.integration
def test_helper_stage_trains_a_critique_adapter_from_chunk_level_data(tiny_model_dir, book, tmp_path):
    out = tmp_path / "bundle"
    config = tiny_config(tiny_model_dir, book, max_height=0, policy="none", helper=True)
    fewer = msgspec.structs.replace(config.data, comparisons_per_level=3)
    config = msgspec.structs.replace(config, data=fewer)
    summaries = ["Alice fell down a hole. The Rabbit ran past. She found a hall of doors.",
                 "The Rabbit was late. Alice followed him. The doors were locked."]
    chunk_data = [Comparison(id=f"c{i}", task="chunk", height=0, input=BOOK[:300], group=f"alice:{i}",
                             candidates=tuple(summaries), preferred=0, evaluator="simulated:test",
                             created=now()) for i in range(6)]
    level_data(out, 0).parent.mkdir(parents=True)
    write_jsonl(level_data(out, 0), chunk_data)
    entry = train_helper_stage(config, out)
    assert entry.role == "helper" and (out / "helper" / "adapter_model.safetensors").is_file()
    assert (out / "helper-sft" / "adapter_model.safetensors").is_file()  # the warm start DPO began from
    assert entry.method == "sft+dpo"
    wanted = {"found_rate_before", "found_rate_after", "precision_after", "most_doubted_after",
              "average_precision_after", "flag_below"}
    assert wanted <= set(entry.metrics)
    served = load_runtime(ModelSpec(base=str(tiny_model_dir), quantization="none", device="cpu",
                                    adapters={"helper": str(out / "helper")}))
    assert served.verify_calibration == VerifyCalibration.load(out / "helper")
    assert served.verify_calibration.flag_below == entry.metrics["flag_below"]


def _read(path: Path) -> list[Comparison]:
    from recursum.training.datasets import read_jsonl

    return list(read_jsonl(path, Comparison))
