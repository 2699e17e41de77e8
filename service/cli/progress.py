"""One tqdm bar per height on stderr, driven by the engine's progress events."""

import sys

from tqdm import tqdm

from clients.schemas import HeightDone, HeightStarted
from service.engine.events import NodeDone, ProgressEvent


class HeightProgress:
    def __init__(self) -> None:
        self._bar: tqdm | None = None

    def __enter__(self) -> "HeightProgress":
        return self

    def __exit__(self, *exc_info) -> None:
        self._close()

    def update(self, event: ProgressEvent) -> None:
        match event:
            case HeightStarted(height=height, nodes=nodes, cached=cached):
                self._close()
                label = f"height {height}" + (f" ({cached} cached)" if cached else "")
                self._bar = tqdm(total=nodes, desc=label, unit="node", file=sys.stderr,
                                 dynamic_ncols=True)
            case NodeDone():
                if self._bar is not None:
                    self._bar.update(1)
            case HeightDone():
                self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
