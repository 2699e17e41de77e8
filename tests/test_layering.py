"""The package boundaries DESIGN.md draws: clients stand alone; the engine never imports training."""

import subprocess
import sys


def _modules_loaded_by(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {".".join(name.split(".")[:2]) for name in result.stdout.split()}


def test_clients_import_neither_service_nor_training():
    loaded = _modules_loaded_by("import recursum.clients.client, recursum.clients.cli")
    assert not loaded & {"recursum.service", "recursum.training"}


def test_the_engine_never_imports_training():
    loaded = _modules_loaded_by("import recursum.service.engine.pipeline.recursion, recursum.service.engine.facade")
    assert "recursum.training" not in loaded
