"""The distribution installs one import root, `recursum`, and its client stands on its own dependencies."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE_FOLDERS = ("schemas", "clients", "service", "training")

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """The wheel built from a copy of the sources, so the build leaves nothing in the work tree."""
    sources, out = tmp_path_factory.mktemp("sources"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, sources / name)
    for folder in SOURCE_FOLDERS:
        shutil.copytree(ROOT / folder, sources / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(sources)], check=True, capture_output=True)
    (path,) = out.glob("recursum-*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


@pytest.fixture(scope="module")
def wheel_names(wheel) -> list[str]:
    return wheel.namelist()


def test_the_wheel_has_one_top_level_import_name(wheel_names):
    top_level = {name.split("/")[0] for name in wheel_names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"recursum"}


def test_the_wheel_holds_every_source_file_of_the_tree(wheel_names):
    expected = {f"recursum/{path.relative_to(ROOT).as_posix()}" for folder in SOURCE_FOLDERS
                for path in (ROOT / folder).rglob("*") if path.is_file() and "__pycache__" not in path.parts}
    assert expected - set(wheel_names) == set()


def test_the_console_script_is_recursum(wheel, wheel_names):
    (entry_points,) = [name for name in wheel_names if name.endswith(".dist-info/entry_points.txt")]
    assert "recursum = recursum.service.cli.main:cli" in wheel.read(entry_points).decode()


# What the `service` extra brings; a client-only install has none of it.
SERVICE_ONLY = ("torch", "transformers", "sqlalchemy", "litestar", "peft", "trl", "numpy", "tiktoken",
                "blingfire", "datasets", "sentence_transformers", "prometheus_client", "uvicorn", "alembic")


def _without_service_dependencies(*lines: str) -> subprocess.CompletedProcess:
    code = "\n".join(["import sys", *(f"sys.modules[{name!r}] = None" for name in SERVICE_ONLY), *lines])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_the_client_imports_without_the_service_dependencies():
    result = _without_service_dependencies(
        "from recursum.clients.client import AsyncClient, Client",
        "from recursum.clients.cli import client",
        "from recursum.schemas.jobs import SummaryCreate",
        "print('ok')",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize("args", [["--help"], ["client", "--help"], ["train", "--help"]])
def test_the_console_script_helps_without_the_service_dependencies(args):
    result = _without_service_dependencies(
        "from recursum.service.cli.main import cli", f"cli({args!r}, prog_name='recursum')")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_a_service_command_without_the_extra_says_what_to_install():
    result = _without_service_dependencies(
        "from recursum.service.cli.main import cli", "cli(['serve', '--dev'], prog_name='recursum')")
    assert result.returncode == 1
    assert "pip install 'recursum[service]'" in result.stderr
    assert "Traceback" not in result.stderr
