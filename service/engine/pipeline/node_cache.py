"""Generation results by content address, so an edited book recomputes only what changed."""

from pathlib import Path
from typing import Protocol

import msgspec

from recursum.service.engine.pipeline.results import GenerationResult

_decode = msgspec.json.Decoder(GenerationResult).decode


class NodeCache(Protocol):
    """Where finished generations are kept; the service's store implements it too."""

    def get(self, key: str) -> GenerationResult | None: ...

    def put(self, result: GenerationResult) -> None: ...


class MemoryNodeCache:
    """A per-process cache (tests, one-off runs)."""

    def __init__(self) -> None:
        self._results: dict[str, GenerationResult] = {}

    def get(self, key: str) -> GenerationResult | None:
        return self._results.get(key)

    def put(self, result: GenerationResult) -> None:
        self._results[result.key] = result


class DirectoryNodeCache:
    """One small JSON file per node under `root`, written atomically (safe to interrupt)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> GenerationResult | None:
        path = self._path(key)
        try:
            return _decode(path.read_bytes())
        except (FileNotFoundError, msgspec.DecodeError):
            return None

    def put(self, result: GenerationResult) -> None:
        path = self._path(result.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        partial.write_bytes(msgspec.json.encode(result))
        partial.replace(path)
