"""`recursum doctor`: what the runtime really loaded, and how fast it generates here."""

import platform
import time

import torch

from recursum.service.engine.interface import Diagnosis
from recursum.service.engine.models.runtime import ModelRuntime, bf16_native


def diagnose(runtime: ModelRuntime, probe_tokens: int = 32) -> Diagnosis:
    """What `runtime` loaded, and one prefill and a short greedy decode on a fixed prompt, timed."""
    model, tokenizer = runtime.model, runtime.tokenizer
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Summarize: Alice followed the White Rabbit down the hole. " * 8}],
        add_generation_prompt=True, return_tensors="pt", return_dict=True,
    ).to(runtime.device)
    with torch.inference_mode():
        started = time.perf_counter()
        model(**prompt)
        prefill = time.perf_counter() - started
        started = time.perf_counter()
        output = model.generate(**prompt, max_new_tokens=probe_tokens, min_new_tokens=probe_tokens,
                                do_sample=False, pad_token_id=tokenizer.pad_token_id)
        generation = time.perf_counter() - started
    prompt_tokens = prompt["input_ids"].shape[1]
    generated = output.shape[1] - prompt_tokens
    on_cuda = runtime.device.type == "cuda"
    return Diagnosis(
        torch=torch.__version__,
        device=str(runtime.device),
        device_name=torch.cuda.get_device_name(runtime.device) if on_cuda else platform.processor() or "cpu",
        cuda_available=torch.cuda.is_available(),
        bf16_native=bf16_native(runtime.device),
        dtype=runtime.info.dtype,
        quantization=runtime.info.quantization,
        adapters=", ".join(f"{role}={digest}" for role, digest in runtime.info.adapters.items()) or "none",
        base=runtime.info.base,
        load_seconds=round(runtime.load_seconds, 2),
        parameters_millions=round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        memory_footprint_mb=round(model.get_memory_footprint() / 1e6, 1),
        gpu_memory_allocated_mb=(round(torch.cuda.memory_allocated(runtime.device) / 1e6, 1)
                                 if on_cuda else None),
        context_window=runtime.context_window,
        probe_prompt_tokens=prompt_tokens,
        prefill_tokens_per_second=round(prompt_tokens / prefill, 1),
        # The generate call re-runs the prefill; subtract it to leave the decode steps.
        decode_tokens_per_second=round(generated / max(generation - prefill, 1e-6), 1),
    )
