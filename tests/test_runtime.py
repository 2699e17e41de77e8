import msgspec
import pytest
import torch
from bundles import make_bundle

from recursum.service.engine.errors import ModelError
from recursum.service.engine.models.bundle import BundleManifest, read_manifest, write_manifest
from recursum.service.engine.models.runtime import load_runtime
from recursum.service.engine.models.spec import DEFAULT_BUNDLE, NO_BUNDLE, ModelSpec


@pytest.fixture(scope="module")
def chunk_adapter(tiny_model_dir, tmp_path_factory):
    """A LoRA adapter with non-zero weights, so it really changes the model's output."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    directory = tmp_path_factory.mktemp("chunk-adapter")
    get_peft_model(base, config).save_pretrained(directory)
    return directory


def _logits(runtime, adapter):
    ids = torch.tensor([[1, 5, 9, 12]])
    with runtime.using(adapter), torch.inference_mode():
        return runtime.model(input_ids=ids).logits


def test_a_role_with_an_adapter_uses_it_and_others_fall_back_to_the_base(tiny_model_dir, chunk_adapter):
    runtime = load_runtime(ModelSpec(base=str(tiny_model_dir), quantization="none", dtype="float32",
                                     adapters={"chunk": str(chunk_adapter)}))
    assert runtime.adapter_for("chunk").startswith("chunk-")
    assert runtime.adapter_for("merge") is None
    assert not torch.allclose(_logits(runtime, runtime.adapter_for("chunk")), _logits(runtime, None))
    plain = load_runtime(ModelSpec(base=str(tiny_model_dir), quantization="none", dtype="float32"))
    assert torch.allclose(_logits(runtime, None), _logits(plain, None), atol=1e-5)
    assert set(runtime.info.adapters) == {"chunk"}


def test_adapters_load_on_the_nf4_quantized_base(tiny_model_dir, chunk_adapter):
    runtime = load_runtime(ModelSpec(base=str(tiny_model_dir), quantization="nf4",
                                     adapters={"chunk": str(chunk_adapter)}))
    assert runtime.info.quantization == "nf4"
    assert _logits(runtime, runtime.adapter_for("chunk")).shape[-1] == runtime.model.config.vocab_size


def test_an_adapter_directory_without_config_is_refused(tiny_model_dir, tmp_path):
    with pytest.raises(ModelError, match="adapter_config.json"):
        load_runtime(ModelSpec(base=str(tiny_model_dir), quantization="none",
                               adapters={"merge": str(tmp_path)}))


def test_int8_quantization_loads_and_runs(tiny_model_dir):
    runtime = load_runtime(ModelSpec(base=str(tiny_model_dir), quantization="int8"))
    assert _logits(runtime, None).isfinite().all()


def test_the_embedded_model_is_served_with_the_shipped_bundle_unless_told_otherwise():
    assert ModelSpec().bundle_directory() == str(DEFAULT_BUNDLE)
    assert ModelSpec(bundle=NO_BUNDLE).bundle_directory() is None
    assert ModelSpec(base="other/model").bundle_directory() is None, "a shipped bundle fits only its base"
    assert ModelSpec(base="other/model", bundle="/b").bundle_directory() == "/b"
    manifest = read_manifest(DEFAULT_BUNDLE)
    assert [(e.role, e.method, e.heights) for e in manifest.adapters] == [("chunk", "sft", [0])]
    assert (DEFAULT_BUNDLE / "chunk" / "adapter_model.safetensors").stat().st_size < 12_000_000
    assert "CC BY 4.0" in (DEFAULT_BUNDLE / "SOURCES.md").read_text()


@pytest.fixture(scope="module")
def two_bundles(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("bundles")
    return (make_bundle(tiny_model_dir, root / "one", {"chunk": 1}),
            make_bundle(tiny_model_dir, root / "two", {"chunk": 2, "merge": 3}))


def test_a_second_bundle_loads_beside_the_first_and_the_first_view_is_unchanged(tiny_model_dir, two_bundles):
    one, two = two_bundles
    first = load_runtime(ModelSpec(base=str(tiny_model_dir), quantization="none", dtype="float32",
                                   bundle=str(one)))
    before = _logits(first, first.adapter_for("chunk"))
    second = first.with_bundle(str(two))
    assert second.info.bundle != first.info.bundle and set(second.info.adapters) == {"chunk", "merge"}
    assert second.adapter_for("chunk") != first.adapter_for("chunk")
    assert torch.allclose(_logits(first, first.adapter_for("chunk")), before), "the old view serves as before"
    assert not torch.allclose(_logits(second, second.adapter_for("chunk")), before)
    assert first.with_bundle(str(one)).adapter_set is first.adapter_set, "a loaded bundle is reused"
    assert second.release({second.info.bundle}) == [first.info.bundle]
    assert first.serving(first.info.bundle) is None
    assert set(second.model.peft_config) == set(second.adapter_set.names.values())
    bare = second.with_bundle(None)
    assert bare.adapter_for("chunk") is None and bare.info.bundle == "none"
    bare.release(set())
    assert not bare.mixes_adapters, "with every set unloaded the model is the plain base again"
    plain = load_runtime(ModelSpec(base=str(tiny_model_dir), quantization="none", dtype="float32"))
    assert torch.allclose(_logits(bare, None), _logits(plain, None), atol=1e-5)
    again = bare.with_bundle(str(one))
    assert torch.allclose(_logits(again, again.adapter_for("chunk")), before, atol=1e-5)


def test_a_bundle_for_another_base_or_with_broken_weights_is_refused_and_nothing_changes(
        tiny_model_dir, two_bundles, tmp_path):
    one, _ = two_bundles
    runtime = load_runtime(ModelSpec(base=str(tiny_model_dir), quantization="none", dtype="float32",
                                     bundle=str(one)))
    loaded = set(runtime.model.peft_config)
    foreign = make_bundle(tiny_model_dir, tmp_path / "foreign", {"chunk": 4})
    manifest = read_manifest(foreign)
    write_manifest(foreign, msgspec.structs.replace(manifest, base_fingerprint="0" * 64))
    with pytest.raises(ModelError, match="trained on base model"):
        runtime.with_bundle(str(foreign))
    broken = make_bundle(tiny_model_dir, tmp_path / "broken", {"chunk": 5, "merge": 6})
    (broken / "merge" / "adapter_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match="'merge'.*does not load"):
        runtime.with_bundle(str(broken))
    with pytest.raises(ModelError, match="no manifest.json"):
        runtime.with_bundle(str(tmp_path))
    assert set(runtime.model.peft_config) == loaded, "a refused bundle leaves no adapter behind"
    assert isinstance(manifest, BundleManifest)
