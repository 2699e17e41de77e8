"""Writing adapter bundles: a manifest for a base model, and entries added or replaced one role at a time."""

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from recursum.service.engine.models.bundle import (
    MANIFEST_FILE,
    AdapterEntry,
    BundleManifest,
    read_manifest,
    write_manifest,
)
from recursum.service.engine.models.runtime import base_directory, fingerprint


def bundle_manifest(out: Path, base: str | None) -> BundleManifest:
    """The manifest already in `out`, or a new one for `base` (None: the embedded default model)."""
    if (out / MANIFEST_FILE).exists():
        return read_manifest(out)
    directory = base_directory(base)
    return BundleManifest(base=directory, base_fingerprint=fingerprint(directory), created=datetime.now(UTC))


def with_entry(manifest: BundleManifest, entry: AdapterEntry) -> BundleManifest:
    """The manifest with `entry` as its adapter for that role (one adapter per role)."""
    others = [e for e in manifest.adapters if e.role != entry.role]
    return msgspec.structs.replace(manifest, adapters=others + [entry])


def add_to_bundle(out: Path, entry: AdapterEntry, base: str | None) -> BundleManifest:
    """Record `entry`, whose adapter is already at `out / entry.path`, in `out`'s manifest."""
    manifest = with_entry(bundle_manifest(out, base), entry)
    write_manifest(out, manifest)
    return manifest


def file_sha256(*paths: Path) -> str:
    """One digest over the files' bytes, in order: which training data an adapter saw."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def numeric_metrics(metrics: msgspec.Struct) -> dict[str, float]:
    """A training run's figures as a manifest entry keeps them."""
    return {name: float(value) for name, value in msgspec.structs.asdict(metrics).items()
            if isinstance(value, int | float)}
