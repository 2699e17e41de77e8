"""One base model in memory (optionally bitsandbytes-quantized) carrying LoRA adapters by role."""

import hashlib
import json
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from recursum.schemas.tree import ModelInfo, Role
from recursum.service.engine.errors import ConfigError, ModelError
from recursum.service.engine.helpers.verify_calibration import VERIFY_CALIBRATION_FILE, VerifyCalibration
from recursum.service.engine.models.batch_memory import batch_memory
from recursum.service.engine.models.bundle import check_base, read_manifest
from recursum.service.engine.models.model_store import convert_gguf, default_model_path, recursum_home
from recursum.service.engine.models.reward_head import REWARD_HEAD_FILE, RewardHead
from recursum.service.engine.models.spec import Device, DType, ModelSpec, Quantization
from recursum.service.engine.pipeline.results import BatchRecord


def resolve_device(device: Device) -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA device is visible; use cpu")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def bf16_native(device: torch.device) -> bool:
    """Whether the hardware runs bf16 natively (CUDA Ampere+, CPUs with AVX-512-BF16/AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


def resolve_dtype(dtype: DType, device: torch.device) -> torch.dtype:
    """bf16 where native (measured 1.9x faster prefill than fp32 on this project's CPU);
    otherwise fp16 on CUDA and fp32 on CPU."""
    if dtype != "auto":
        return getattr(torch, dtype)
    if bf16_native(device):
        return torch.bfloat16
    return torch.float16 if device.type == "cuda" else torch.float32


def quantization_config(quantization: Quantization, dtype: torch.dtype, device: torch.device):
    from transformers import BitsAndBytesConfig

    match quantization:
        case "nf4":
            return BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=dtype,
                # Double quantization saves ~0.4 bit/param; worth it on GPU memory, not on CPU.
                bnb_4bit_use_double_quant=device.type == "cuda",
            )
        case "int8":
            # bitsandbytes' int8 matmul casts every input to fp16 and warns on each call.
            warnings.filterwarnings("ignore", message="MatMul8bitLt: inputs will be cast")
            return BitsAndBytesConfig(load_in_8bit=True)
        case "none":
            return None


def base_directory(base: str | None) -> str:
    """An HF directory or hub id to load; a .gguf file is converted once into the cache."""
    if base is None:
        return str(default_model_path())
    path = Path(base)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"GGUF file {path} does not exist")
        stat = path.stat()
        tag = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        converted = recursum_home() / "converted" / tag.hexdigest()[:16]
        if not (converted / "config.json").is_file():
            convert_gguf(path, converted)
        return str(converted)
    if path.exists() and not (path / "config.json").is_file():
        raise ModelError(f"{path} is not a model directory (no config.json)")
    return base


_FINGERPRINT_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                      "chat_template.jinja")
_SAMPLE_BYTES = 1 << 20


def fingerprint(directory: str) -> str:
    """Identifies what shapes generation: config, tokenizer and chat template in full, and each weight
    file by size plus its first and last MiB (two quantizations of one model differ there; hashing
    whole multi-GB files at every start would not be worth it)."""
    path = Path(directory)
    if not path.is_dir():
        return hashlib.sha256(directory.encode()).hexdigest()
    digest = hashlib.sha256()
    for name in _FINGERPRINT_FILES:
        if (path / name).is_file():
            digest.update(name.encode() + (path / name).read_bytes())
    for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        size = weights.stat().st_size
        with weights.open("rb") as handle:
            head = handle.read(_SAMPLE_BYTES)
            handle.seek(max(0, size - _SAMPLE_BYTES))
            tail = handle.read(_SAMPLE_BYTES)
        digest.update(f"{weights.name}:{size}".encode() + head + tail)
    return digest.hexdigest()


class ModelRuntime:
    """The loaded model and tokenizer, and the adapter switch used per generation batch."""

    def __init__(self, model, tokenizer, spec: ModelSpec, info: ModelInfo, load_seconds: float,
                 adapters: dict[Role, str] | None = None, reward_head: RewardHead | None = None,
                 verify_calibration: VerifyCalibration | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.spec = spec
        self.info = info
        self.load_seconds = load_seconds
        self.adapters = adapters if adapters is not None else dict(spec.adapters)
        self.reward_head = reward_head
        self.verify_calibration = verify_calibration
        self.on_batch: Callable[[BatchRecord], None] | None = None  # told of every generate call
        self.device = next(model.parameters()).device
        self.context_window = int(
            getattr(model.config, "max_position_embeddings", None) or tokenizer.model_max_length
        )
        compute_dtype = getattr(torch, info.dtype)
        self.batch_memory = batch_memory(model.config, compute_dtype, self.device, spec.batch_memory_mb)

    def adapter_for(self, role: str) -> str | None:
        """The adapter serving `role`, or None: the base model with the role's prompt."""
        return role if role in self.adapters and role != "reward" else None

    @contextmanager
    def using(self, adapter: str | None) -> Iterator[None]:
        """Run the block with `adapter` active, or with every adapter disabled for None."""
        if not self.adapters:
            yield
        elif adapter is None:
            with self.model.disable_adapter():
                yield
        else:
            self.model.set_adapter(adapter)
            yield


def load_runtime(spec: ModelSpec) -> ModelRuntime:
    """Load base model, tokenizer and adapters as `spec` says; errors name the setting to fix."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    device = resolve_device(spec.device)
    dtype = resolve_dtype(spec.dtype, device)
    directory = base_directory(spec.base)
    quantization = quantization_config(spec.quantization, dtype, device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory)
        model = AutoModelForCausalLM.from_pretrained(
            directory,
            dtype=dtype,
            quantization_config=quantization,
            device_map={"": device.type if device.type == "cpu" else device.index or 0},
            attn_implementation="sdpa",
        )
    except OSError as error:
        raise ModelError(f"cannot load model {directory!r}: {str(error).splitlines()[0]}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # decoder-only batches must end where generation begins
    base_fingerprint = fingerprint(directory)
    adapter_paths = dict(spec.adapters)
    if (bundle := spec.bundle_directory()) is not None:
        manifest = read_manifest(bundle)
        check_base(manifest, bundle, base_fingerprint)
        adapter_paths = manifest.adapter_paths(bundle) | adapter_paths
    model = _attach_adapters(model, adapter_paths)
    model.eval()
    reward_head = RewardHead.load(adapter_paths["reward"]) if "reward" in adapter_paths else None
    helper = adapter_paths.get("helper")
    verify_calibration = VerifyCalibration.load(helper) if helper is not None else None
    info = ModelInfo(
        base=directory,
        fingerprint=base_fingerprint,
        quantization=spec.quantization,
        dtype=str(dtype).removeprefix("torch."),
        device=device.type,
        adapters={role: _fingerprint_adapter(path) for role, path in adapter_paths.items()},
    )
    return ModelRuntime(model, tokenizer, spec, info, time.perf_counter() - started, adapter_paths,
                        reward_head, verify_calibration)


def _attach_adapters(model, adapters: dict[Role, str]):
    if not adapters:
        return model
    from peft import PeftModel

    peft_model = None
    for role, path in adapters.items():
        if not (Path(path) / "adapter_config.json").is_file():
            raise ModelError(f"adapter for role {role!r} at {path} has no adapter_config.json")
        if peft_model is None:
            peft_model = PeftModel.from_pretrained(model, path, adapter_name=role)
        else:
            peft_model.load_adapter(path, adapter_name=role)
    return peft_model


def _fingerprint_adapter(path: str) -> str:
    directory = Path(path)
    digest = hashlib.sha256(json.dumps(json.loads((directory / "adapter_config.json").read_text()),
                                       sort_keys=True).encode())
    for weights in sorted(directory.glob("adapter_model.*")) + sorted(directory.glob(REWARD_HEAD_FILE)) \
            + sorted(directory.glob(VERIFY_CALIBRATION_FILE)):
        digest.update(weights.read_bytes())
    return digest.hexdigest()[:16]
