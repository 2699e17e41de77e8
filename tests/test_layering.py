"""The package boundaries DESIGN.md draws: clients stand alone; the engine never imports training."""

import subprocess
import sys


def _modules_loaded_by(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in result.stdout.split()}


def test_clients_import_neither_service_nor_training():
    loaded = _modules_loaded_by("import clients.schemas, clients.exceptions, clients.client, clients.cli")
    assert not loaded & {"service", "training"}


def test_the_engine_never_imports_training():
    assert "training" not in _modules_loaded_by("import service.engine.recursion, service.engine.facade")
