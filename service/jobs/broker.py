"""Fans job events out from the worker thread to SSE subscribers on the event loop, within bounds: streams
per key and overall are capped, and a subscriber whose queue fills is dropped (it reconnects and reads the
current state), so a slow or stalled reader costs the server a bounded queue, never unbounded memory."""

import asyncio
import threading
from collections import Counter, defaultdict

import msgspec

from recursum.schemas.events import JobEvent

QUEUE_EVENTS = 1000  # a job's whole height of node events fits; a reader this far behind is stalled


class StreamLimits(msgspec.Struct, frozen=True, kw_only=True):
    total: int = 256
    per_key: int = 16
    seconds: float = 3600.0  # a stream's lifetime; the client reconnects and gets the state first


class TooManyStreams(Exception):
    """Raised by `subscribe` when the caller or the server has all the streams it may have open."""


class Subscription:
    """One SSE reader's bounded queue; `overflowed` once it fell too far behind to be kept."""

    def __init__(self, job_id: str, owner: str) -> None:
        self.job_id = job_id
        self.owner = owner
        self.queue: asyncio.Queue[JobEvent] = asyncio.Queue(maxsize=QUEUE_EVENTS)
        self.loop = asyncio.get_running_loop()
        self.overflowed = False

    def offer(self, event: JobEvent) -> None:
        """On the event loop: queue `event`, or mark the reader dropped when its queue is full."""
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True


class EventBroker:
    def __init__(self, limits: StreamLimits | None = None) -> None:
        self.limits = limits or StreamLimits()
        self._lock = threading.Lock()
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)
        self._per_owner: Counter[str] = Counter()

    def subscribe(self, job_id: str, owner: str) -> Subscription:
        """A bounded queue receiving the job's future events; call from the event loop."""
        with self._lock:
            if sum(self._per_owner.values()) >= self.limits.total:
                raise TooManyStreams(f"the server has {self.limits.total} event streams open; retry later")
            if self._per_owner[owner] >= self.limits.per_key:
                raise TooManyStreams(f"this API key has {self.limits.per_key} event streams open; close "
                                     "one or poll GET /v1/summaries/{id}")
            subscription = Subscription(job_id, owner)
            self._subscribers[job_id].add(subscription)
            self._per_owner[owner] += 1
            return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            subscribers = self._subscribers.get(subscription.job_id, set())
            if subscription in subscribers:
                subscribers.discard(subscription)
                self._per_owner[subscription.owner] -= 1
            if not subscribers:
                self._subscribers.pop(subscription.job_id, None)

    def publish(self, job_id: str, event: JobEvent) -> None:
        """Thread-safe: called by the worker for each event of a job."""
        with self._lock:
            targets = list(self._subscribers.get(job_id, ()))
        for subscription in targets:
            subscription.loop.call_soon_threadsafe(subscription.offer, event)
