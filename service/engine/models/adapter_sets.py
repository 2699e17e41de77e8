"""Adapter sets: one bundle's LoRA adapters, loaded into the shared base model under names of their own.

Several sets can be loaded at once, so the served bundle can be swapped while jobs still run on the one
they started with: a set's adapters are named `role-version`, and each batch row names the adapter it
runs (peft's per-row `adapter_names`), so rows of the old and the new bundle even share a batch. A set is
validated whole (manifest, base fingerprint, every adapter loadable) before anything may switch to it.
"""

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from recursum.schemas.tree import Role
from recursum.service.engine.errors import ModelError
from recursum.service.engine.helpers.verify_calibration import VERIFY_CALIBRATION_FILE, VerifyCalibration
from recursum.service.engine.models.bundle import check_base, read_manifest
from recursum.service.engine.models.reward_head import REWARD_HEAD_FILE, RewardHead

BARE_VERSION = "none"  # the version of the empty set: the base model alone


@dataclass(frozen=True)
class AdapterSet:
    """The adapters one bundle (or `--adapter` list) puts in the model, and what it serves them with."""

    version: str  # a digest of the role fingerprints: equal versions are the same weights
    directory: str | None  # the bundle directory, None for adapters named one by one or none
    paths: dict[Role, str] = field(default_factory=dict)  # role -> adapter directory
    names: dict[Role, str] = field(default_factory=dict)  # role -> the peft adapter name in the model
    fingerprints: dict[Role, str] = field(default_factory=dict)  # role -> digest of that adapter's files
    reward_head: RewardHead | None = None
    verify_calibration: VerifyCalibration | None = None


BARE = AdapterSet(version=BARE_VERSION, directory=None)


def bundle_paths(directory: str, base_fingerprint: str) -> dict[Role, str]:
    """Role → adapter directory of the bundle at `directory`, refused if made for another base."""
    manifest = read_manifest(directory)
    check_base(manifest, directory, base_fingerprint)
    return manifest.adapter_paths(directory)


def set_version(fingerprints: dict[Role, str]) -> str:
    if not fingerprints:
        return BARE_VERSION
    return hashlib.sha256(json.dumps(sorted(fingerprints.items())).encode()).hexdigest()[:16]


def read_set(paths: dict[Role, str], directory: str | None) -> AdapterSet:
    """The set `paths` make, read and checked from disk before the model is touched. The bundle directory
    is kept with its links resolved: a `current` link repointed later must not change what it names."""
    for role, path in paths.items():
        if not (Path(path) / "adapter_config.json").is_file():
            raise ModelError(f"adapter for role {role!r} at {path} has no adapter_config.json")
    fingerprints = {role: fingerprint_adapter(path) for role, path in paths.items()}
    version = set_version(fingerprints)
    return AdapterSet(
        version=version, directory=os.path.realpath(directory) if directory else None, paths=dict(paths),
        names={role: f"{role}-{version[:12]}" for role in paths}, fingerprints=fingerprints,
        reward_head=RewardHead.load(paths["reward"]) if "reward" in paths else None,
        verify_calibration=VerifyCalibration.load(paths["helper"]) if "helper" in paths else None,
    )


def attach_set(model, adapters: AdapterSet):
    """Load a set's adapters into `model` (wrapped in a `PeftModel` if bare) and return the model; an
    adapter that fails to load is taken out again with those before it, so the model is as it was."""
    for role, path in adapters.paths.items():
        try:
            model = _load_adapter(model, path, adapters.names[role])
        except Exception as error:
            detach_set(model, adapters)
            raise ModelError(f"adapter for role {role!r} at {path} does not load on this base model: "
                             f"{str(error).splitlines()[0]}") from None
    return model


def detach_set(model, adapters: AdapterSet) -> None:
    """Free a set's adapters from the model (a bundle no job uses any more, or one half loaded)."""
    for name in adapters.names.values():
        if name in getattr(model, "peft_config", {}):
            model.delete_adapter(name)


def is_peft(model) -> bool:
    return hasattr(model, "peft_config")


def _load_adapter(model, path: str, name: str):
    if is_peft(model):
        model.load_adapter(path, adapter_name=name)
        return model
    from peft import PeftModel

    return PeftModel.from_pretrained(model, path, adapter_name=name)


def fingerprint_adapter(path: str) -> str:
    """Digest of what an adapter directory serves: its config, weights, reward head and calibration."""
    directory = Path(path)
    digest = hashlib.sha256(json.dumps(json.loads((directory / "adapter_config.json").read_text()),
                                       sort_keys=True).encode())
    for weights in sorted(directory.glob("adapter_model.*")) + sorted(directory.glob(REWARD_HEAD_FILE)) \
            + sorted(directory.glob(VERIFY_CALIBRATION_FILE)):
        digest.update(weights.read_bytes())
    return digest.hexdigest()[:16]
