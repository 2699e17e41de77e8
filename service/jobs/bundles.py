"""Switching the served adapter bundle without a restart, on the worker thread, between batches.

An activation (the admin API, or SIGHUP) is validated by loading the bundle here; only a bundle that
loads is written to the store's activation log, whose latest row every replica follows (checked at most
every `follow_seconds`), so replicas converge without each being told. Jobs keep the set they started on
(their nodes' keys name it); a set is unloaded once neither the store nor a running job uses it.
"""

import logging
import queue
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from recursum.schemas.adapters import BundleRead
from recursum.service.engine.errors import ModelError
from recursum.service.engine.interface import Engine
from recursum.service.store.repository import Store

log = logging.getLogger("recursum.bundles")

CONFIGURATION = "configuration"  # `activated_by` of the bundle a replica served before any activation


@dataclass(frozen=True)
class _Activation:
    directory: str | None
    by: str
    answer: Future


class BundleSwitch:
    """This replica's side of adapter activations: requests to serve, and the store's choice to follow."""

    def __init__(self, store: Store, on_switch: Callable[[str], None], follow_seconds: float = 2.0) -> None:
        self.store = store
        self.on_switch = on_switch  # told the outcome: activated | followed | refused | failed
        self.follow_seconds = follow_seconds
        self._requests: queue.SimpleQueue[_Activation] = queue.SimpleQueue()
        self._followed = 0.0  # when the store was last read
        self._unloadable: str | None = None  # a stored version this replica failed to load: not retried

    def request(self, directory: str | None, by: str) -> Future:
        """Ask the worker to serve `directory` (None: the bare model); the future gets the activation or
        the `ModelError` that refused it."""
        answer: Future = Future()
        self._requests.put(_Activation(directory, by, answer))
        return answer

    def abandon(self) -> None:
        """Refuse the requests still queued (the worker is stopping), so no caller waits for nothing."""
        while not self._requests.empty():
            self._requests.get().answer.set_exception(
                ModelError("this replica is stopping; activate the bundle on another one"))

    def waiting(self, engine: Engine) -> bool:
        """Whether a switch waits for the batch to drain: a request, or a new activation in the store."""
        if not self._requests.empty():
            return True
        if time.monotonic() - self._followed < self.follow_seconds:
            return False
        return self._stored_change(engine) is not None

    def apply(self, engine: Engine, in_use: set[str]) -> None:
        """Between batches: carry out requests, follow the store, unload sets nobody uses."""
        while not self._requests.empty():
            self._activate(engine, self._requests.get())
        if (served := self._stored_change(engine)) is not None:
            self._follow(engine, served)
        engine.release(in_use)

    def _stored_change(self, engine: Engine) -> BundleRead | None:
        self._followed = time.monotonic()
        served = self.store.adapters.served()
        if served is None or served.version in (engine.bundle.version, self._unloadable):
            return None
        return served

    def _activate(self, engine: Engine, activation: _Activation) -> None:
        try:
            version = engine.load_bundle(activation.directory)
        except (ModelError, OSError, ValueError) as error:  # OSError: a path the system refuses to read
            refusal = error if isinstance(error, ModelError) else ModelError(
                f"cannot read {activation.directory}: {error}")
            log.warning("adapter bundle %s refused (asked by %s): %s", activation.directory, activation.by,
                        refusal)
            self.on_switch("refused")
            activation.answer.set_exception(refusal)
            return
        except Exception as error:  # the caller is waiting: it gets the error, the worker carries on
            log.exception("loading adapter bundle %s failed", activation.directory)
            activation.answer.set_exception(error)
            return
        try:
            if self.store.adapters.served() is None and engine.bundle.reloadable:
                # The first activation keeps what was served before it as the rollback target.
                self.store.adapters.activate(engine.bundle.directory, engine.bundle.version, CONFIGURATION)
            row = self.store.adapters.activate(activation.directory, version, activation.by)
        except Exception as error:  # the store refused: nothing switched
            activation.answer.set_exception(error)
            return
        engine.serve(version)
        self._unloadable = None
        log.info("serving adapter bundle %s (%s), activated by %s", version, activation.directory,
                 activation.by)
        self.on_switch("activated")
        activation.answer.set_result(row)

    def _follow(self, engine: Engine, served: BundleRead) -> None:
        try:
            version = engine.load_bundle(served.directory)
            if version != served.version:
                raise ModelError(f"{served.directory} now holds version {version}, not {served.version}")
        except ModelError as error:
            log.error("cannot serve the activated adapter bundle %s (%s): %s; still serving %s",
                      served.version, served.directory, error, engine.bundle.version)
            self._unloadable = served.version
            self.on_switch("failed")
            return
        engine.serve(version)
        log.info("serving adapter bundle %s (%s), activated on another replica", version, served.directory)
        self.on_switch("followed")

    def resume(self, engine: Engine, version: str) -> str:
        """The set a job that started on `version` runs on: loaded again from the activation log if need be,
        else (its bundle gone) the served one."""
        if version in engine.loaded_bundles():
            return version
        stored = self.store.adapters.of_version(version)
        try:
            if stored is not None and engine.load_bundle(stored.directory) == version:
                return version
        except ModelError as error:
            log.warning("adapter set %s cannot be loaded again: %s", version, error)
        log.warning("adapter set %s is gone; the job resumes on %s", version, engine.bundle.version)
        return engine.bundle.version
