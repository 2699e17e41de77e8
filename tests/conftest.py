"""Shared fixtures: a tiny randomly initialised chat model (no download) and the shared data path."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_cluster import ClusterUnavailable, throwaway_cluster

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

TRAINING_TEXT = (
    "Alice was beginning to get very tired of sitting by her sister on the bank. "
    "The Rabbit took a watch out of its waistcoat pocket and hurried on. "
    "Victor Frankenstein built a creature and fled from it in horror. "
    "Elizabeth Bennet met Mr. Darcy at the ball and thought him proud. "
) * 20


def build_tiny_model(directory: Path, max_positions: int = 512) -> Path:
    """A 2-layer Llama with a byte-level BPE tokenizer trained on a few sentences."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator([TRAINING_TEXT], trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>",
        unk_token="<|endoftext|>", pad_token="<|im_end|>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def evidence_scorer():
    from recursum.service.engine.pipeline.evidence import EvidenceScorer

    return EvidenceScorer()


@pytest.fixture
def recursum_home(tmp_path, monkeypatch) -> Path:
    """An empty RECURSUM_HOME per test, so nothing touches the developer's cache."""
    monkeypatch.setenv("RECURSUM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def shared_data(relative: str) -> Path:
    """A path under ../shared/data, skipping the test with the reason when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"shared data {path} is absent (tests read it from ../shared/data)")
    return path


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster; skips with the reason where this machine cannot run one."""
    try:
        with throwaway_cluster() as url:
            yield url
    except ClusterUnavailable as reason:
        pytest.skip(str(reason))
