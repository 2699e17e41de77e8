"""Training data: schemas, the validator, the SQuALITY import, the split by story, the simulated labeler."""

from datetime import UTC, datetime

import msgspec
import pytest
from click.testing import CliRunner
from conftest import shared_data

from recursum.service.cli.main import cli
from recursum.training.datasets import Comparison, Demonstration, read_jsonl, split_by_group, write_jsonl
from recursum.training.labeler import LabelerConfig, SimulatedLabeler, copied_share

CREATED = datetime(2024, 1, 1, tzinfo=UTC)

SOURCE = (
    "Captain Steffens landed the ship on the fourth planet of Tybanon. "
    "Lieutenant Ball found stone buildings that were fifteen thousand years old. "
    "The crew discovered a robot that had waited alone for its masters. "
    "The robot asked Steffens to take it back to Earth. "
    "Steffens agreed, and the ship left the dead planet with the robot aboard."
)
SUPPORTED = (
    "Steffens and his crew land on an old planet and find ancient stone buildings. "
    "They meet a robot that waited for its masters, and take it with them to Earth."
)
PLANTED = "Elizabeth Bennet dances with Mr. Darcy at the Netherfield ball."
WITH_PLANTED = f"Steffens and his crew land on an old planet and find ancient stone buildings. {PLANTED}"
PADDED = SUPPORTED + (
    " The planet is old. The buildings are made of stone. The crew are on the planet."
    " The robot is a robot. The ship is a ship. The planet is the fourth planet."
)


def comparison(**changes) -> Comparison:
    fields = dict(id="c1", task="merge", height=1, input="Part one.\n\nPart two.", group="story-1",
                  candidates=("A summary.", "Another summary."), preferred=0, confidence=0.8,
                  evaluator="squality:2", reports_seen=("r1",), created=CREATED)
    return Comparison(**(fields | changes))


def test_comparison_and_demonstration_round_trip_through_jsonl(tmp_path):
    records = [comparison(), comparison(id="c2", preferred="tie", task="root", height=None)]
    path = tmp_path / "comparisons.jsonl"
    assert write_jsonl(path, records) == 2
    assert list(read_jsonl(path, Comparison)) == records
    demo = Demonstration(task="helper:critique", height=2, input="x", output="y", source="human", group="g")
    write_jsonl(path, [demo])
    assert list(read_jsonl(path, Demonstration)) == [demo]


@pytest.mark.parametrize("changes, message", [
    (dict(task="helper:"), "regex"),
    (dict(task="chunk", height=2), "height 0"),
    (dict(task="root", height=3), "no height"),
    (dict(candidates=("Same.", "Same.")), "identical"),
    (dict(candidates=("   ", "Other.")), "blank"),
])
def test_schema_rejects_inconsistent_records(changes, message):
    record = msgspec.to_builtins(comparison()) | changes
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.convert(record, Comparison)


def test_split_by_group_never_puts_one_group_on_both_sides():
    items = [comparison(id=f"{g}-{i}", group=f"story-{g}") for g in range(10) for i in range(3)]
    train, held_out = split_by_group(items, held_out_fraction=0.2, seed=1)
    assert {c.group for c in train}.isdisjoint({c.group for c in held_out})
    assert len({c.group for c in held_out}) == 2 and len(train) + len(held_out) == len(items)
    assert split_by_group(items, 0.2, seed=1) == (train, held_out)


def _validate(*args: str):
    return CliRunner().invoke(cli, ["train", "data", "validate", *args])


def test_validate_accepts_a_good_file(tmp_path):
    path = tmp_path / "good.jsonl"
    write_jsonl(path, [comparison(), comparison(id="c2")])
    result = _validate(str(path))
    assert result.exit_code == 0, result.output
    assert "2 comparison lines: 2 good, 0 bad" in result.stderr


def test_validate_reports_each_bad_line_with_its_number_and_exits_1(tmp_path):
    good = msgspec.json.encode(comparison())
    lines = [
        good,                                                            # 1 good
        b'{"task": "merge", "height": 1,',                               # 2 invalid JSON
        good.replace(b'"height":1', b'"height":"one"'),                  # 3 wrong type
        good.replace(b'"A summary."', b'""'),                            # 4 empty candidate
        good.replace(b'"A summary."', b'"Another summary."'),            # 5 identical candidates
        good.replace(b'"Part one.', b'"' + b"word " * 300),              # 6 overflows 100 tokens
        b"\xff\xfe\x00binary\x00",                                       # 7 not UTF-8
    ]
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = _validate(str(path), "--type", "comparison", "--max-input-tokens", "100")
    assert result.exit_code == 1
    reported = {int(line.split(":")[1]): line for line in result.stdout.splitlines()}
    assert sorted(reported) == [2, 3, 4, 5, 6, 7]
    assert "invalid JSON" in reported[2]
    assert "Expected `int | null`, got `str`" in reported[3]
    assert "length >= 1" in reported[4]
    assert "identical" in reported[5]
    assert "over --max-input-tokens 100" in reported[6]
    assert "not UTF-8" in reported[7]
    assert "7 comparison lines: 1 good, 6 bad" in result.stderr


def test_validate_survives_a_binary_file(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(bytes(range(256)) * 64)
    result = _validate(str(path))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # no traceback
    assert "0 good, 65 bad" in result.stderr and "not UTF-8" in result.stderr  # 64 newline bytes


def test_validate_detects_demonstrations(tmp_path):
    path = tmp_path / "demos.jsonl"
    write_jsonl(path, [Demonstration(task="chunk", height=0, input="Text.", output="Sum.", source="h",
                                     group="g")])
    path.write_bytes(path.read_bytes() + b'{"task": "chunk", "height": 0, "input": "x", "output": "",'
                     b' "source": "h", "group": "g"}\n')
    result = _validate(str(path))
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{path}:2:")
    assert "2 demonstration lines: 1 good, 1 bad" in result.stderr


@pytest.fixture(scope="module")
def squality(tmp_path_factory) -> list[Comparison]:
    source = shared_data("comparisons/squality_human_eval")
    out = tmp_path_factory.mktemp("squality") / "comparisons.jsonl"
    result = CliRunner().invoke(cli, ["train", "data", "import-squality", "--source", str(source),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    return list(read_jsonl(out, Comparison))


def test_import_squality_converts_every_pairwise_row(squality):
    rows = shared_data("comparisons/squality_human_eval/pairwise.jsonl").read_bytes().count(b"\n")
    assert len(squality) == rows == 720
    first = squality[0]
    assert (first.task, first.height, first.group, first.evaluator) == ("root", None, "50827", "squality:2")
    assert first.input.startswith("Question: What is the plot of the story?\n\nStory:\nOrphans of the Void")
    assert {c.policies for c in squality} >= {("bart", "bart-dpr"), ("bart-dpr", "bart")}
    assert len({c.group for c in squality}) == 16


def test_squality_split_keeps_each_story_on_one_side(squality):
    train, held_out = split_by_group(squality, held_out_fraction=0.25, seed=0)
    assert {c.group for c in train}.isdisjoint({c.group for c in held_out})
    assert len({c.group for c in held_out}) == 4


def test_import_squality_names_the_missing_file(tmp_path):
    result = CliRunner().invoke(cli, ["train", "data", "import-squality", "--source", str(tmp_path),
                                      "--out", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 1
    assert "stories.jsonl not found: pass --source DIR" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()


def _label(labeler: SimulatedLabeler, candidates: tuple[str, str], **extra) -> Comparison:
    return labeler.label(id="p", task="chunk", height=0, input=SOURCE, group="orphans",
                         candidates=candidates, **extra)


def test_simulated_labeler_prefers_supported_over_planted_sentences(evidence_scorer):
    labeler = SimulatedLabeler(evidence_scorer)
    assert _label(labeler, (WITH_PLANTED, SUPPORTED), planted={PLANTED}).preferred == 1
    assert _label(labeler, (SUPPORTED, WITH_PLANTED), planted={PLANTED}).preferred == 0


def test_simulated_labeler_prefers_concise_over_padded(evidence_scorer):
    labeler = SimulatedLabeler(evidence_scorer)
    assert _label(labeler, (PADDED, SUPPORTED)).preferred == 1
    assert _label(labeler, (SUPPORTED, PADDED)).preferred == 0


def test_simulated_labeler_penalizes_copying(evidence_scorer):
    copied = " ".join(SOURCE.split(". ")[:2]) + "."
    assert copied_share(copied, SOURCE, n=12) > 0.9
    assert copied_share(SUPPORTED, SOURCE, n=12) == 0.0
    lenient = SimulatedLabeler(evidence_scorer, LabelerConfig(copy_penalty=0.0))
    strict = SimulatedLabeler(evidence_scorer, LabelerConfig(copy_penalty=0.5))
    lost = lenient.score(copied, SUPPORTED, SOURCE) - strict.score(copied, SUPPORTED, SOURCE)
    assert lost == pytest.approx(0.5 * copied_share(copied, SOURCE, n=12))


def test_simulated_labeler_without_noise_is_deterministic_and_says_it_is_simulated(evidence_scorer):
    first = [_label(SimulatedLabeler(evidence_scorer, LabelerConfig(seed=s)), (SUPPORTED, PADDED))
             for s in range(3)]
    assert {(c.preferred, c.confidence) for c in first} == {(first[0].preferred, first[0].confidence)}
    assert first[0].evaluator == "simulated:seed=0,noise=0.0"


def test_noisy_simulated_labelers_disagree_by_seed(evidence_scorer):
    def labels(seed: int) -> list:
        labeler = SimulatedLabeler(evidence_scorer, LabelerConfig(seed=seed, noise=1.0))
        return [_label(labeler, (SUPPORTED, PADDED)).preferred for _ in range(40)]

    assert labels(1) == labels(1)
    assert labels(1) != labels(2)
    assert 0 < labels(1).count(0) < 40
