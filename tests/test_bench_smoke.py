"""Every benchmark still runs: each script in bench/ has a `--smoke` mode, and it runs end to end here.

The benches are the project's evidence; a refactor that breaks one must fail CI, not wait for the next
person who reruns it (bench/evaluator_leverage.py once broke silently this way). The smoke runs are
processes that mostly load models and libraries, so they run two at a time, one CPU thread each: on a
2-core runner that takes about two thirds of the time of one after another.
"""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(path.name for path in BENCH.glob("*.py") if not path.name.startswith("_"))
AT_ONCE = 2
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _smoke(script: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH / script), "--smoke"], capture_output=True, text=True,
                          cwd=BENCH, timeout=900, env=os.environ | ONE_THREAD)


@pytest.fixture(scope="module")
def smoke_runs() -> dict[str, subprocess.CompletedProcess]:
    with ThreadPoolExecutor(max_workers=AT_ONCE) as pool:
        return dict(zip(SCRIPTS, pool.map(_smoke, SCRIPTS), strict=True))


def test_there_are_benches_to_smoke():
    assert len(SCRIPTS) >= 8


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_smoke_mode_runs_to_its_table(script, smoke_runs):
    result = smoke_runs[script]
    assert "unrecognized arguments: --smoke" not in result.stderr, f"bench/{script} has no --smoke mode"
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipped" not in result.stdout + result.stderr, "the smoke run skipped its work"
    assert result.stdout.strip(), "the smoke run printed no table"
