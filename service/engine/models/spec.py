"""What model to load, as settings, the CLI and the training configs name it (torch-free)."""

from pathlib import Path
from typing import Literal

import msgspec

from recursum.schemas.tree import Role

Quantization = Literal["nf4", "int8", "none"]
Device = Literal["auto", "cpu", "cuda"]
DType = Literal["auto", "bfloat16", "float16", "float32"]


class ModelSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What to load. `base` is an HF checkpoint directory, a `.gguf` file or a hub id;
    None means the embedded default model. `adapters` maps a role to a peft LoRA directory;
    `bundle` is a directory written by `recursum train levels` or `train sft --role` (its adapters,
    overridden by `adapters` role by role); None serves the embedded model with the bundle that ships
    with it (`DEFAULT_BUNDLE`) and any other base bare; `NO_BUNDLE` serves the bare model.
    `batch_memory_mb` bounds one generation batch (None: a share of the memory free at load)."""

    base: str | None = None
    quantization: Quantization = "nf4"
    device: Device = "auto"
    dtype: DType = "auto"
    adapters: dict[Role, str] = {}
    bundle: str | None = None
    batch_memory_mb: int | None = None

    def bundle_directory(self) -> str | None:
        """The bundle to load, if any."""
        if self.bundle == NO_BUNDLE:
            return None
        if self.bundle is None:
            return str(DEFAULT_BUNDLE) if self.base is None else None
        return self.bundle


NO_BUNDLE = "none"
# The chunk adapter trained on SQuALITY train's human plot summaries (default_adapters/SOURCES.md): it won
# on SQuALITY dev, so the embedded model is served with it unless `--adapters none`.
DEFAULT_BUNDLE = Path(__file__).resolve().parent / "default_adapters"
