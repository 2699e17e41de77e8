"""Adapter bundles for tests: LoRA adapters with non-zero weights (so they really change the output) on the
tiny model, with a manifest the service accepts."""

from datetime import UTC, datetime
from pathlib import Path

from recursum.service.engine.models.bundle import AdapterEntry, BundleManifest, write_manifest


def lora_adapter(base: Path, out: Path, seed: int) -> Path:
    """A LoRA on `q_proj`/`v_proj` whose weights `seed` draws, saved at `out`."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(base), config).save_pretrained(out)
    return out


def make_bundle(base: Path, out: Path, seeds: dict[str, int]) -> Path:
    """A bundle at `out` with one adapter per role in `seeds`, made for the model at `base`."""
    from recursum.service.engine.models.runtime import fingerprint

    entries = [AdapterEntry(role=role, path=role, heights=[0], method="sft", data_sha256=f"seed-{seed}")
               for role, seed in seeds.items()]
    for role, seed in seeds.items():
        lora_adapter(base, out / role, seed)
    write_manifest(out, BundleManifest(base=str(base), base_fingerprint=fingerprint(str(base)),
                                       created=datetime.now(UTC), adapters=entries))
    return out
