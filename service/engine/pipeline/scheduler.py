"""One scheduler for the ready generations of every run: each batch is formed afresh, fair across owners.

A run (a tree in progress) lists the generations it is ready for: a leaf at once, a merge as soon as its
own children are done. A batch takes generations that can share it (same settings and batch size; each
row keeps its own adapter); its rows go to the owner (API key) served least so far, then to that owner's
least-served run, and a row that finishes is refilled the same way, so a job that arrives mid-book gets
the next free row.
A generation several runs need runs once. Torch-free: the job worker drives it through `Engine.generate`.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import msgspec

from recursum.service.engine.pipeline.results import GenerationRequest, GenerationResult, GenerationSettings


class Generation(msgspec.Struct, frozen=True, kw_only=True):
    """A generation a run is ready for, and what it may share a batch with."""

    request: GenerationRequest
    settings: GenerationSettings
    batch_size: int

    @property
    def group(self) -> tuple[GenerationSettings, int]:
        """Generations that may share a batch; adapters may differ (each row runs its own)."""
        return self.settings, self.batch_size


class Run(Protocol):
    """What the scheduler needs of a tree in progress."""

    @property
    def done(self) -> bool: ...

    def ready(self) -> list[Generation]:
        """Generations whose inputs are done and whose results have not arrived."""
        ...

    def pending_keys(self) -> frozenset[str]:
        """Content addresses of every generation the run still waits for."""
        ...

    def accept(self, result: GenerationResult) -> None:
        """Take a finished generation; may make further generations ready."""
        ...


@dataclass(frozen=True)
class BatchHooks:
    """How a continuous batch reports back: results and failures as they happen, rows withdrawn
    (`wanted` false), and `refill(n)` asked for up to n more requests whenever rows are free."""

    on_result: Callable[[GenerationResult], None]
    on_failure: Callable[[list[str], Exception], None]
    wanted: Callable[[str], bool]
    refill: Callable[[int], Sequence[GenerationRequest]]


GenerateBatch = Callable[[Sequence[GenerationRequest], GenerationSettings, int, BatchHooks], None]


@dataclass
class _Entry:
    owner: str
    run: Run
    arrival: int  # ties go to the newest: a job that just arrived takes the next free row
    served: int = 0  # rows given to this run


@dataclass
class Scheduler:
    generate: GenerateBatch
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _served: dict[str, int] = field(default_factory=dict)  # rows given to each owner with runs here
    _in_flight: set[str] = field(default_factory=set)
    _arrivals: int = 0
    _owner_arrival: dict[str, int] = field(default_factory=dict)  # an owner's newest run

    def add(self, run_id: str, owner: str, run: Run) -> None:
        """A newcomer starts level with the least-served, so it is neither starved nor owed a backlog."""
        if owner not in self._served:
            self._served[owner] = min(self._served.values(), default=0)
        peers = [entry.served for entry in self._entries.values() if entry.owner == owner]
        self._arrivals += 1
        self._owner_arrival[owner] = self._arrivals
        self._entries[run_id] = _Entry(owner=owner, run=run, arrival=self._arrivals,
                                       served=min(peers, default=0))

    def remove(self, run_id: str) -> None:
        entry = self._entries.pop(run_id, None)
        if entry is not None and not any(e.owner == entry.owner for e in self._entries.values()):
            del self._served[entry.owner], self._owner_arrival[entry.owner]

    def run_batch(self, wanted: Callable[[str], bool] = lambda key: True,
                  admit: Callable[[], bool] = lambda: True) -> dict[str, Exception] | None:
        """One continuous batch, led by the least-served owner's next generation; None if no run is ready.

        Before each refill `admit()` may add runs (they compete for the freed rows) or return False to let
        the batch drain. Returns the runs a failure hit, as {run id: error}; the others went on.
        """
        failed: dict[str, Exception] = {}
        lead = self._pick(None, failed)
        if lead is None:
            return None
        group = lead.group
        first = self._take(group, lead.batch_size, failed)

        def still_wanted(key: str) -> bool:  # asked every decoding step: cheap unless something failed
            return wanted(key) and (not failed or any(key in entry.run.pending_keys()
                                                      for _, entry in self._live(failed)))

        def on_result(result: GenerationResult) -> None:
            self._in_flight.discard(result.key)
            for run_id, entry in self._live(failed):
                if result.key in entry.run.pending_keys():
                    try:
                        entry.run.accept(result)
                    except Exception as error:  # e.g. its node could not be stored: this run alone fails
                        failed[run_id] = error

        def on_failure(keys: list[str], error: Exception) -> None:
            self._in_flight.difference_update(keys)
            for run_id, entry in self._live(failed):
                if not entry.run.pending_keys().isdisjoint(keys):
                    failed[run_id] = error

        def refill(free: int) -> list[GenerationRequest]:
            return self._take(group, free, failed) if admit() else []

        try:
            self.generate(first, group[0], lead.batch_size, BatchHooks(
                on_result=on_result, on_failure=on_failure, wanted=still_wanted, refill=refill))
        finally:
            self._in_flight.clear()  # a withdrawn row returns no result; it is ready again next batch
        return failed

    def _live(self, failed: dict[str, Exception]) -> list[tuple[str, _Entry]]:
        return [(run_id, entry) for run_id, entry in self._entries.items() if run_id not in failed]

    def _pick(self, group: tuple | None, failed: dict[str, Exception]) -> Generation | None:
        """The next row: the least-served owner's least-served run's first ready generation (in `group`)."""
        def turn(entry: _Entry) -> tuple[int, int, int, int]:
            owner = entry.owner
            return self._served[owner], -self._owner_arrival[owner], entry.served, -entry.arrival

        for entry in sorted((entry for _, entry in self._live(failed)), key=turn):
            for generation in entry.run.ready():
                key = generation.request.key
                if key not in self._in_flight and (group is None or generation.group == group):
                    return generation
        return None

    def _take(self, group: tuple, rows: int, failed: dict[str, Exception]) -> list[GenerationRequest]:
        taken: list[GenerationRequest] = []
        while len(taken) < rows and (generation := self._pick(group, failed)) is not None:
            key = generation.request.key
            self._in_flight.add(key)
            taken.append(generation.request)
            for entry in self._entries.values():  # every run that waits for it is served by it
                if key in entry.run.pending_keys():
                    entry.served += 1
                    self._served[entry.owner] += 1
        return taken
