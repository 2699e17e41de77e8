"""What model to load, as settings, the CLI and the training configs name it (torch-free)."""

from typing import Literal

import msgspec

from recursum.schemas.tree import Role

Quantization = Literal["nf4", "int8", "none"]
Device = Literal["auto", "cpu", "cuda"]
DType = Literal["auto", "bfloat16", "float16", "float32"]


class ModelSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What to load. `base` is an HF checkpoint directory, a `.gguf` file or a hub id;
    None means the embedded default model. `adapters` maps a role to a peft LoRA directory;
    `bundle` is a directory written by `recursum train levels` (its adapters, overridden by
    `adapters` role by role)."""

    base: str | None = None
    quantization: Quantization = "nf4"
    device: Device = "auto"
    dtype: DType = "auto"
    adapters: dict[Role, str] = {}
    bundle: str | None = None
