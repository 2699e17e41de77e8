"""Adapter bundles: the directory `recursum train levels` writes and the service loads with `--adapters`.

One LoRA directory per role (the reward adapter carries its scalar head) and a `manifest.json` that
says what each was trained on and for which base model; a bundle made for another base is refused,
since LoRA weights only mean something on the weights they were trained against.
"""

from datetime import datetime
from pathlib import Path

import msgspec

from recursum.schemas.tree import Role
from recursum.service.engine.errors import ModelError

MANIFEST_FILE = "manifest.json"


class AdapterEntry(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One trained adapter: its role, the tree heights it was trained on, and how it did."""

    role: Role
    path: str  # relative to the bundle directory
    heights: list[int]
    method: str  # "reward" | "dpo" | "sft" | ...
    data_sha256: str  # hash of the training JSONL, so a rerun on other data is visible
    metrics: dict[str, float] = {}


class BundleManifest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    format: int = 1
    base: str
    base_fingerprint: str
    created: datetime
    adapters: list[AdapterEntry] = []

    def adapter_paths(self, directory: str | Path) -> dict[Role, str]:
        """Role → absolute adapter directory; a path leading out of the bundle (`../`, an absolute path, a
        link elsewhere) is refused, so a manifest cannot make the service load files it was not given."""
        root = Path(directory).resolve()
        paths = {}
        for entry in self.adapters:
            path = (root / entry.path).resolve()
            if not path.is_relative_to(root):
                raise ModelError(f"bundle {directory}: adapter {entry.role!r} at {entry.path!r} lies outside "
                                 "the bundle; adapter paths must stay inside it")
            paths[entry.role] = str(path)
        return paths


def read_manifest(directory: str | Path) -> BundleManifest:
    """The bundle's manifest; a missing or malformed one is a `ModelError` naming the file."""
    path = Path(directory) / MANIFEST_FILE
    if not path.is_file():
        raise ModelError(f"{directory} is not an adapter bundle: it has no {MANIFEST_FILE}")
    try:
        return msgspec.json.decode(path.read_bytes(), type=BundleManifest)
    except msgspec.DecodeError as error:
        raise ModelError(f"{path} is not a valid bundle manifest: {error}") from None


def write_manifest(directory: str | Path, manifest: BundleManifest) -> None:
    """Write atomically, so a reader never sees half a manifest (training may be interrupted)."""
    path = Path(directory) / MANIFEST_FILE
    partial = path.with_suffix(".json.partial")
    partial.write_bytes(msgspec.json.format(msgspec.json.encode(manifest)))
    partial.replace(path)


def check_base(manifest: BundleManifest, directory: str | Path, fingerprint: str) -> None:
    """Refuse a bundle trained on another base model."""
    if manifest.base_fingerprint != fingerprint:
        raise ModelError(
            f"adapter bundle {directory} was trained on base model {manifest.base} "
            f"(fingerprint {manifest.base_fingerprint[:12]}), but the loaded base has fingerprint "
            f"{fingerprint[:12]}; load the base model it was trained on, or retrain the bundle"
        )
