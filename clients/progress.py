"""One tqdm bar per height on stderr, driven by job events (remote jobs and local runs alike)."""

import sys

from tqdm import tqdm

from recursum.schemas.events import HeightDone, HeightStarted, JobEvent, JobState, NodeSummary


class HeightBars:
    """One tqdm bar per height on stderr, driven by the job's events."""

    def __init__(self) -> None:
        self._bar: tqdm | None = None

    def __enter__(self) -> "HeightBars":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._close()

    def update(self, event: JobEvent) -> None:
        match event:
            case JobState(job=job):
                # Joining mid-height (or after a reconnect): resume the height in progress.
                current = [p for p in job.progress if p.done < p.total]
                if current:
                    self._open(f"height {current[0].height}", current[0].total, current[0].done)
            case HeightStarted(height=height, nodes=nodes, cached=cached):
                self._open(f"height {height}" + (f" ({cached} cached)" if cached else ""), nodes, 0)
            case NodeSummary():
                if self._bar is not None:
                    self._bar.update(1)
            case HeightDone():
                self._close()

    def _open(self, label: str, total: int, done: int) -> None:
        self._close()
        self._bar = tqdm(total=total, initial=done, desc=label, unit="node", file=sys.stderr,
                         dynamic_ncols=True)

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
