"""Adapter bundle manifests: paths stay inside the bundle."""

from datetime import UTC, datetime

import pytest

from recursum.service.engine.errors import ModelError
from recursum.service.engine.models.bundle import AdapterEntry, BundleManifest


def _manifest(path: str) -> BundleManifest:
    entry = AdapterEntry(role="chunk", path=path, heights=[0], method="sft", data_sha256="0" * 64)
    return BundleManifest(base="base", base_fingerprint="f", created=datetime.now(UTC), adapters=[entry])


def test_adapter_paths_resolve_inside_the_bundle(tmp_path):
    assert _manifest("chunk").adapter_paths(tmp_path) == {"chunk": str((tmp_path / "chunk").resolve())}


@pytest.mark.parametrize("path", ["../elsewhere", "/etc", "chunk/../../elsewhere"])
def test_a_manifest_path_out_of_the_bundle_is_refused(tmp_path, path):
    with pytest.raises(ModelError, match="outside the bundle"):
        _manifest(path).adapter_paths(tmp_path / "bundle")


def test_a_link_out_of_the_bundle_is_refused(tmp_path):
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "chunk").symlink_to(tmp_path)
    with pytest.raises(ModelError, match="outside the bundle"):
        _manifest("chunk").adapter_paths(tmp_path / "bundle")
