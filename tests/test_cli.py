"""The `recursum` command as a user meets it: output formats, the tree file, and clean errors."""

import msgspec
import pytest
from click.testing import CliRunner

from recursum.service.cli.main import cli
from recursum.service.engine.pipeline.tree import Tree

STORY = "\n\n".join(f"Part {i}. Alice followed the Rabbit into the hall and found a key." for i in range(6))


@pytest.fixture
def run(tiny_model_dir, recursum_home):
    def invoke(*args: str):
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return invoke


@pytest.fixture
def book(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text(STORY)
    return path


def _summarize(run, tiny_model_dir, *args):
    return run("summarize", *args, "--model", str(tiny_model_dir), "--quantization", "none",
               "--chunk-tokens", "40", "--summary-tokens", "8", "--merge-tokens", "64")


def test_summarize_prints_the_root_and_writes_the_whole_tree(run, tiny_model_dir, book, tmp_path):
    out = tmp_path / "tree.json"
    result = _summarize(run, tiny_model_dir, str(book), "--out", str(out))
    assert result.exit_code == 0, result.output
    tree = msgspec.json.decode(out.read_bytes(), type=Tree)
    assert result.stdout.strip() == tree.root_node.summary.strip()
    assert len(tree.heights) >= 2
    assert "height 0" in result.stderr  # the progress bar


def test_json_format_prints_a_decodable_tree(run, tiny_model_dir, book):
    result = _summarize(run, tiny_model_dir, str(book), "--format", "json")
    assert result.exit_code == 0
    assert msgspec.json.decode(result.stdout, type=Tree).title == "book"


def test_markdown_format_shows_every_height(run, tiny_model_dir, book):
    result = _summarize(run, tiny_model_dir, str(book), "--format", "markdown")
    assert result.exit_code == 0
    assert result.stdout.startswith("# book")
    assert "## Height 0" in result.stdout


def test_a_rerun_reuses_cached_nodes(run, tiny_model_dir, book):
    _summarize(run, tiny_model_dir, str(book))
    second = _summarize(run, tiny_model_dir, str(book))
    assert "cached" in second.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"  \n\t\n", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        (b"caf\xe9 au lait", "not valid UTF-8"),
    ],
)
def test_unusable_files_get_one_line_and_exit_code_1(run, tiny_model_dir, tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    result = _summarize(run, tiny_model_dir, str(path))
    assert result.exit_code == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_a_file_over_the_size_limit_is_refused(run, tiny_model_dir, book):
    result = _summarize(run, tiny_model_dir, str(book), "--max-bytes", "100")
    assert result.exit_code == 1
    assert "limit" in result.stderr


def test_a_missing_file_is_a_usage_error(run, tiny_model_dir, tmp_path):
    result = _summarize(run, tiny_model_dir, str(tmp_path / "nope.txt"))
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_an_out_of_range_option_names_the_setting(run, tiny_model_dir, book):
    result = _summarize(run, tiny_model_dir, str(book), "--batch-size", "0")
    assert result.exit_code == 1
    assert "batch_size" in result.stderr


def test_a_missing_model_directory_is_a_clear_error(run, book, tmp_path):
    result = run("summarize", str(book), "--model", str(tmp_path))
    assert result.exit_code == 1
    assert "config.json" in result.stderr


def test_models_list_says_how_to_install_when_empty(run):
    result = run("models", "list")
    assert result.exit_code == 0
    assert "recursum models pull" in result.stdout


def test_doctor_reports_what_the_runtime_loaded(run, tiny_model_dir):
    result = run("doctor", "--model", str(tiny_model_dir), "--quantization", "nf4")
    assert result.exit_code == 0, result.output
    report = dict(line.split(":", 1) for line in result.stdout.splitlines())
    report = {key.strip(): value.strip() for key, value in report.items()}
    assert report["quantization"] == "nf4"
    assert report["device"] == "cpu"
    assert float(report["decode_tokens_per_second"]) > 0
    assert float(report["memory_footprint_mb"]) > 0


def test_a_dry_run_prints_the_estimate_and_loads_no_model(run, book, monkeypatch):
    from recursum.service.engine import interface

    def never(spec):
        raise AssertionError("a dry run loaded the model")

    monkeypatch.setattr(interface, "load_engine", never)
    result = run("summarize", str(book), "--dry-run", "--chunk-tokens", "40", "--model", "/nowhere")
    assert result.exit_code == 0, result.output
    estimate = msgspec.json.decode(result.stdout)
    assert estimate["chunks"] >= 2 and estimate["nodes"][0] == estimate["chunks"]
    assert estimate["seconds"] is None and estimate["basis"] == "none"


def test_the_local_command_takes_no_service_only_option(run, book):
    result = CliRunner().invoke(cli, ["summarize", str(book), "--dry-run", "--evaluation", "true"])
    assert result.exit_code == 2 and "No such option '--evaluation'" in result.output


def test_a_question_changes_the_dry_run_estimate(run, book):
    plain = run("summarize", str(book), "--dry-run", "--chunk-tokens", "40", "--model", "/nowhere")
    asked = run("summarize", str(book), "--dry-run", "--chunk-tokens", "40", "--model", "/nowhere",
                "--question", "Where does Alice go and why?")
    assert asked.exit_code == 0, asked.output
    tokens = [msgspec.json.decode(result.stdout)["prompt_tokens"] for result in (asked, plain)]
    assert tokens[0] > tokens[1]
