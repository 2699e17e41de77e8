"""Shared fixtures: a tiny randomly initialised chat model (no download) and the shared data path."""

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

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
    from service.engine.evidence import EvidenceScorer

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


def _postgres_bin_dir() -> Path | None:
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    pg_ctl = shutil.which("pg_ctl") or (installed[-1] if installed else None)
    return Path(pg_ctl).resolve().parent if pg_ctl else None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway cluster on a Unix socket in a temp dir; yields a URL with `{}` for the database name."""
    pytest.importorskip("psycopg", reason="PostgreSQL tests need the driver: pip install 'psycopg[binary]'")
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the PostgreSQL server as")
        as_user = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="recursum-pg-"))
    if as_user:
        shutil.chown(root, "postgres")
    data = root / "data"
    pg_ctl = [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data)]
    subprocess.run(
        [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True, capture_output=True,
    )
    options = f"-k {root} -c listen_addresses='' -F"
    subprocess.run(
        [*pg_ctl, "-l", str(root / "log"), "-w", "-o", options, "start"], check=True, capture_output=True
    )
    try:
        yield f"postgresql://postgres@/{{}}?host={root}"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def new_postgres_database(server: str) -> str:
    """A fresh, empty database on the throwaway cluster; returns its URL."""
    import sqlalchemy as sa

    from service.store.database import create_database_engine

    name = f"test_{uuid.uuid4().hex}"
    admin = create_database_engine(server.format("postgres"))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server.format(name)
