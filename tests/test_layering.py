"""The package boundaries DESIGN.md draws.

Clients stand alone; the engine never imports training; the API, the job worker, the CLI, the store and the
settings reach the model only through `engine.interface`, so none of them loads torch until a model does.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # each check imports in a fresh interpreter

ROOT = Path(__file__).resolve().parents[1]
# What callers may import of the engine: its interface and the torch-free value modules it speaks in.
ENGINE_SURFACE = {
    "recursum.service.engine.interface",
    "recursum.service.engine.errors",
    "recursum.service.engine.helpers.tasks",
    "recursum.service.engine.models.model_store",
    "recursum.service.engine.models.spec",
    "recursum.service.engine.pipeline.document",
    "recursum.service.engine.pipeline.estimate",  # a tree's cost from its chunks (tiktoken; no model)
    "recursum.service.engine.pipeline.events",
    "recursum.service.engine.pipeline.node_cache",
    "recursum.service.engine.pipeline.prompts",
    "recursum.service.engine.pipeline.results",
    "recursum.service.engine.pipeline.scheduler",  # forms batches from ready work; calls Engine.generate
    "recursum.service.engine.pipeline.planting",  # gold items plant false sentences (regular expressions)
    "recursum.service.engine.pipeline.tree",
}
CALLERS = ("service/api", "service/jobs", "service/cli", "service/store", "service/settings.py")


def _modules_loaded_by(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def _top(modules: set[str], depth: int = 2) -> set[str]:
    return {".".join(name.split(".")[:depth]) for name in modules}


def test_clients_import_neither_service_nor_training():
    loaded = _top(_modules_loaded_by("import recursum.clients.client, recursum.clients.cli"))
    assert not loaded & {"recursum.service", "recursum.training"}


def test_the_engine_never_imports_training():
    loaded = _modules_loaded_by("import recursum.service.engine.facade")
    assert "recursum.training" not in _top(loaded)


@pytest.mark.parametrize("module", [
    "recursum.service.api.app", "recursum.service.jobs.worker", "recursum.service.cli.main",
    "recursum.service.store.repository", "recursum.service.settings",
])
def test_callers_of_the_engine_load_no_torch(module):
    assert not _top(_modules_loaded_by(f"import {module}"), 1) & {"torch", "transformers", "peft"}


def _engine_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    modules |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return {module for module in modules if module.startswith("recursum.service.engine")}


def test_api_worker_and_cli_use_only_the_engine_interface_and_its_value_modules():
    files = [path for caller in CALLERS for path in
             ((ROOT / caller).rglob("*.py") if (ROOT / caller).is_dir() else [ROOT / caller])]
    assert files
    beyond = {f"{path.relative_to(ROOT)}: {module}" for path in files
              for module in _engine_imports(path) - ENGINE_SURFACE}
    assert beyond == set()
