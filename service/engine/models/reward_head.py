"""The reward adapter's scalar head and score normalisation, stored beside its LoRA weights."""

from pathlib import Path

import msgspec
import torch

from recursum.service.engine.errors import ModelError

REWARD_HEAD_FILE = "reward_head.safetensors"
REWARD_META_FILE = "recursum-reward.json"


class RewardMeta(msgspec.Struct, frozen=True, kw_only=True):
    """What serving must repeat from training: the sequence budget pairs were trimmed to, and the
    raw-score mean and spread on the training pairs (scores are served as (raw - mean) / std)."""

    max_tokens: int
    mean: float
    std: float


class RewardHead:
    """The scalar head and its normalisation, loaded from a reward adapter directory."""

    def __init__(self, weight: torch.Tensor, meta: RewardMeta) -> None:
        self.weight = weight  # (1, hidden)
        self.meta = meta

    @classmethod
    def load(cls, directory: str | Path) -> "RewardHead":
        from safetensors.torch import load_file

        path = Path(directory)
        if not (path / REWARD_HEAD_FILE).is_file() or not (path / REWARD_META_FILE).is_file():
            raise ModelError(f"reward adapter at {path} lacks {REWARD_HEAD_FILE} or {REWARD_META_FILE}; "
                             "train it with `recursum train reward`")
        meta = msgspec.json.decode((path / REWARD_META_FILE).read_bytes(), type=RewardMeta)
        return cls(load_file(str(path / REWARD_HEAD_FILE))["weight"], meta)

    def save(self, directory: str | Path) -> None:
        from safetensors.torch import save_file

        path = Path(directory)
        save_file({"weight": self.weight.detach().float().cpu().contiguous()}, str(path / REWARD_HEAD_FILE))
        (path / REWARD_META_FILE).write_bytes(msgspec.json.encode(self.meta))
