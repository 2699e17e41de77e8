"""Routes of /v1/admin/adapters: which adapter bundle is served, activating one, rolling back (admin).

An activation is carried out by this replica's worker between batches: the bundle is loaded and checked
first (a refused one answers 422 and changes nothing), then written to the store, which every replica
follows. The call answers once this replica serves it.
"""

import asyncio
from pathlib import Path

from litestar import Controller, Request, get, post
from litestar.params import JSONBody

from recursum.schemas.adapters import AdapterActivate, AdaptersRead, BundleRead
from recursum.service.api.problems import Conflict, NotReady
from recursum.service.engine.errors import ConfigError
from recursum.service.engine.models.spec import NO_BUNDLE
from recursum.service.jobs.worker import JobWorker

SWITCH_SECONDS = 900  # the running batch drains first: minutes on a CPU


class AdapterController(Controller):
    path = "/v1/admin/adapters"
    tags = ["admin"]

    @get("/", opt={"scope": "admin"}, sync_to_thread=True)
    def read(self, request: Request) -> AdaptersRead:
        """The served bundle and the one before it (the rollback target), and what this replica serves."""
        return _adapters_read(request.app.state.worker)

    @post("/", opt={"scope": "admin"}, status_code=200)
    async def activate(self, request: Request, data: JSONBody[AdapterActivate]) -> AdaptersRead:
        """Serve the bundle at `directory` (absolute, readable by every replica; "none": the bare model)."""
        directory = None if data.directory == NO_BUNDLE else data.directory
        if directory is not None and not Path(directory).is_absolute():
            raise ConfigError(f"directory {directory!r} must be an absolute path every replica can read")
        return await _switch(request, directory, request.state.principal.name)

    @post("/rollback", opt={"scope": "admin"}, status_code=200)
    async def rollback(self, request: Request) -> AdaptersRead:
        """Serve the bundle served before the current one again."""
        worker: JobWorker = request.app.state.worker
        activations = worker.store.adapters.latest(2)
        if len(activations) < 2:
            raise Conflict("no bundle was served before the current one: nothing to roll back to")
        return await _switch(request, activations[1].directory,
                             f"{request.state.principal.name} (rollback of {activations[0].version})")


async def _switch(request: Request, directory: str | None, by: str) -> AdaptersRead:
    worker: JobWorker = request.app.state.worker
    if worker.engine is None:
        raise NotReady("the model is not loaded yet; retry once /readyz answers 200",
                       headers={"Retry-After": "5"})
    try:
        await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(worker.activate(directory, by))),
                               SWITCH_SECONDS)
    except TimeoutError:
        raise NotReady(f"the switch still waits for the running batch after {SWITCH_SECONDS} s; it stays "
                       "queued: GET /v1/admin/adapters shows when it is served") from None
    return _adapters_read(worker)


def _adapters_read(worker: JobWorker) -> AdaptersRead:
    activations: list[BundleRead] = worker.store.adapters.latest(2)
    engine = worker.engine
    return AdaptersRead(served=next(iter(activations), None),
                        previous=activations[1] if len(activations) > 1 else None,
                        replica=worker.replica_id,
                        serving_here=engine.bundle.version if engine is not None else "loading",
                        directory_here=engine.bundle.directory if engine is not None else None,
                        loaded_here=engine.loaded_bundles() if engine is not None else [])
