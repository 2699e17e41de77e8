"""Fans job events out from the worker thread to SSE subscribers on the event loop."""

import asyncio
import threading
from collections import defaultdict

from recursum.schemas.events import JobEvent


class EventBroker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Queue]]] = (
            defaultdict(set))

    def subscribe(self, job_id: str) -> asyncio.Queue:
        """A queue receiving the job's future events; call from the event loop."""
        queue: asyncio.Queue = asyncio.Queue()
        with self._lock:
            self._subscribers[job_id].add((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, job_id: str, queue: asyncio.Queue) -> None:
        with self._lock:
            subscribers = self._subscribers.get(job_id, set())
            subscribers.difference_update({s for s in subscribers if s[1] is queue})
            if not subscribers:
                self._subscribers.pop(job_id, None)

    def publish(self, job_id: str, event: JobEvent) -> None:
        """Thread-safe: called by the worker for each event of a job."""
        with self._lock:
            targets = list(self._subscribers.get(job_id, ()))
        for loop, queue in targets:
            loop.call_soon_threadsafe(queue.put_nowait, event)
