"""The distribution installs one import root, `recursum`, and its client stands on its own dependencies."""

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
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(ROOT)], check=True, capture_output=True)
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


def test_the_client_imports_without_torch_transformers_or_sqlalchemy():
    blocked = ("torch", "transformers", "sqlalchemy", "litestar", "peft", "trl")
    code = "; ".join([
        "import sys",
        *(f"sys.modules[{name!r}] = None" for name in blocked),
        "from recursum.clients.client import AsyncClient, Client",
        "from recursum.clients.cli import client",
        "from recursum.schemas.jobs import SummaryCreate",
        "print('ok')",
    ])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
