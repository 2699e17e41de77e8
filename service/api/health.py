"""Unauthenticated ops routes: liveness, readiness (model loaded, recent 1-token probe), metrics."""

import time

from litestar import Request, Response, get
from litestar.concurrency import sync_to_thread
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from recursum.service.api.auth import PUBLIC
from recursum.service.api.problems import NotReady


@get("/healthz", tags=["ops"], opt=PUBLIC)
async def healthz() -> dict[str, str]:
    """The process is alive and serving HTTP."""
    return {"status": "ok"}


@get("/readyz", tags=["ops"], opt=PUBLIC)
async def readyz(request: Request) -> dict[str, str | float]:
    """Ready when the model is loaded and answered a 1-token probe within the configured window."""
    worker = request.app.state.worker
    if worker.load_error:
        raise NotReady("the model failed to load; the server log says why")
    engine = worker.engine
    if engine is None:
        raise NotReady("the model is still loading")
    window = request.app.state.settings.readiness_probe_seconds
    stale = engine.last_probe is None or time.time() - engine.last_probe > window
    if stale and not await sync_to_thread(engine.health):
        raise NotReady("the model's probe produced non-finite logits")
    return {"status": "ready", "last_probe": engine.last_probe}


@get("/metrics", tags=["ops"], include_in_schema=False, opt=PUBLIC)
async def metrics(request: Request) -> Response[bytes]:
    """HTTP metrics (default registry) followed by this app's engine metrics."""
    body = generate_latest(REGISTRY) + generate_latest(request.app.state.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
