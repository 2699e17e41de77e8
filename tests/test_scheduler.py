"""The scheduler forms every batch from ready work: fair across owners, then runs, refilling freed rows."""

from recursum.service.engine.pipeline.prompts import PromptInput
from recursum.service.engine.pipeline.results import GenerationRequest, GenerationResult, GenerationSettings
from recursum.service.engine.pipeline.scheduler import BatchHooks, Generation, Scheduler

SETTINGS = GenerationSettings()


class ListRun:
    """A run of independent generations named `<name>-<i>`, all ready at once."""

    def __init__(self, name: str, count: int, settings: GenerationSettings = SETTINGS) -> None:
        self.waiting = [f"{name}-{i}" for i in range(count)]
        self.settings = settings
        self.accepted: list[str] = []

    @property
    def done(self) -> bool:
        return not self.waiting

    def ready(self) -> list[Generation]:
        return [Generation(request=GenerationRequest(key=key, adapter=None,
                                                     prompt=PromptInput(role="chunk", passage=key)),
                           settings=self.settings, batch_size=2) for key in self.waiting]

    def pending_keys(self) -> frozenset[str]:
        return frozenset(self.waiting)

    def accept(self, result: GenerationResult) -> None:
        self.waiting.remove(result.key)
        self.accepted.append(result.key)


class RowByRow:
    """A continuous batch that finishes one row per step and refills it: records the order rows ran in."""

    def __init__(self, fail: str | None = None) -> None:
        self.order: list[str] = []
        self.batches = 0
        self.fail = fail

    def __call__(self, requests, settings, batch_size, hooks: BatchHooks) -> None:
        self.batches += 1
        rows = list(requests)
        while rows:
            request = rows.pop(0)
            if hooks.wanted(request.key):
                self.order.append(request.key)
                if request.key == self.fail:
                    hooks.on_failure([request.key], RuntimeError("the device fell over"))
                else:
                    hooks.on_result(GenerationResult(key=request.key, text="x", prompt_tokens=1,
                                                     generated_tokens=1, truncated=False))
            rows.extend(hooks.refill(1))


def test_two_owners_alternate_rows_whatever_each_has_queued():
    generate = RowByRow()
    scheduler = Scheduler(generate)
    scheduler.add("big", "alice", ListRun("big", 6))
    scheduler.add("small", "bob", ListRun("small", 3))
    scheduler.run_batch()
    assert [key.split("-")[0] for key in generate.order[:6]] == ["small", "big"] * 3
    assert generate.batches == 1, "one continuous batch served both"


def test_one_owners_jobs_share_its_turns():
    generate = RowByRow()
    scheduler = Scheduler(generate)
    scheduler.add("a1", "alice", ListRun("a1", 4))
    scheduler.add("a2", "alice", ListRun("a2", 4))
    scheduler.add("b", "bob", ListRun("b", 4))
    scheduler.run_batch()
    alice = [key[:2] for key in generate.order if key.startswith("a")]
    assert alice[:4] == ["a2", "a1", "a2", "a1"]
    assert [key[0] for key in generate.order[:4]] == ["b", "a", "b", "a"]


def test_a_job_arriving_mid_batch_gets_the_next_free_row():
    generate = RowByRow()
    scheduler = Scheduler(generate)
    book = ListRun("book", 10)
    scheduler.add("book", "alice", book)
    arrivals = iter([ListRun("late", 1)])

    def admit() -> bool:
        if len(book.accepted) == 3 and (late := next(arrivals, None)) is not None:
            scheduler.add("late", "alice", late)
        return True

    scheduler.run_batch(admit=admit)
    # book-3 already held the other row; late-0 takes the first row freed after it arrived.
    assert generate.order.index("late-0") == 4
    assert generate.batches == 1


def test_a_newcomer_starts_level_with_the_least_served_not_owed_a_backlog():
    generate = RowByRow()
    scheduler = Scheduler(generate)
    scheduler.add("a", "alice", ListRun("a", 12))
    scheduler.add("b", "bob", ListRun("b", 12))
    joined = []

    def admit() -> bool:
        if len(generate.order) == 8 and not joined:
            joined.append(scheduler.add("c", "carol", ListRun("c", 12)))
        return True

    scheduler.run_batch(admit=admit)
    after = generate.order[8:17]
    assert sorted(key[0] for key in after) == ["a"] * 3 + ["b"] * 3 + ["c"] * 3


def test_cancelling_one_run_never_stalls_the_others():
    generate = RowByRow()
    scheduler = Scheduler(generate)
    cancelled, kept = ListRun("cancelled", 5), ListRun("kept", 5)
    scheduler.add("cancelled", "alice", cancelled)
    scheduler.add("kept", "bob", kept)
    assert scheduler.run_batch(wanted=lambda key: not key.startswith("cancelled")) == {}
    assert kept.done and not cancelled.accepted


def test_a_failure_fails_only_the_run_that_needed_the_row():
    generate = RowByRow(fail="doomed-1")
    scheduler = Scheduler(generate)
    doomed, spared = ListRun("doomed", 3), ListRun("spared", 3)
    scheduler.add("doomed", "alice", doomed)
    scheduler.add("spared", "bob", spared)
    failures = scheduler.run_batch()
    assert list(failures) == ["doomed"] and "fell over" in str(failures["doomed"])
    assert spared.done
    assert "doomed-2" not in generate.order, "a failed run gets no further rows"


def test_work_that_cannot_share_the_batch_waits_for_the_next():
    generate = RowByRow()
    scheduler = Scheduler(generate)
    sampled = GenerationSettings(temperature=0.8)
    scheduler.add("greedy", "alice", ListRun("greedy", 2))
    scheduler.add("sampled", "bob", ListRun("sampled", 2, sampled))
    scheduler.run_batch()
    scheduler.run_batch()
    assert sorted([generate.order[:2], generate.order[2:]]) == [["greedy-0", "greedy-1"],
                                                                 ["sampled-0", "sampled-1"]]
    assert scheduler.run_batch() is None


def test_a_generation_two_runs_need_runs_once_and_serves_both():
    generate = RowByRow()
    scheduler = Scheduler(generate)
    first, second = ListRun("same", 2), ListRun("same", 2)
    scheduler.add("first", "alice", first)
    scheduler.add("second", "bob", second)
    scheduler.run_batch()
    assert generate.order == ["same-0", "same-1"]
    assert first.done and second.done
