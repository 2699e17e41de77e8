"""The Litestar app: `create_app()` is short; the wiring lives in the `_configure_*` functions."""

import asyncio
import logging
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.concurrency import sync_to_thread
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.plugins.prometheus import PrometheusConfig

from recursum.service.api.adapters.controller import AdapterController
from recursum.service.api.auth import scope_guard
from recursum.service.api.estimates.controller import EstimateController
from recursum.service.api.evaluations.controller import ComparisonController, EvaluationController
from recursum.service.api.evaluations.page import evaluate_page, evaluate_static
from recursum.service.api.evaluations.service import EvaluationPolicy, EvaluationService
from recursum.service.api.health import healthz, metrics, readyz
from recursum.service.api.hosts import AllowedHosts
from recursum.service.api.nul import RefuseNul
from recursum.service.api.problems import problem_response
from recursum.service.api.reports.controller import ReportController
from recursum.service.api.reports.service import ReportService
from recursum.service.api.summaries.controller import SummaryController
from recursum.service.api.summaries.service import SummaryService
from recursum.service.engine.interface import Engine, load_engine
from recursum.service.jobs.broker import EventBroker
from recursum.service.jobs.callbacks import CallbackDeliverer
from recursum.service.jobs.metrics import EngineMetrics
from recursum.service.jobs.worker import JobWorker
from recursum.service.settings import ServiceSettings
from recursum.service.store.database import default_database_url
from recursum.service.store.repository import Store

log = logging.getLogger("recursum.api")


def create_app(settings: ServiceSettings, engine: Engine | None = None,
               store: Store | None = None) -> Litestar:
    """An app serving `settings`; tests pass a ready `engine` and `store`."""
    state = State({"settings": settings, "broker": EventBroker(settings.streams), "metrics": EngineMetrics(),
                   "estimating": Counter(),
                   "store": store or Store(settings.database_url or default_database_url())})
    prometheus = PrometheusConfig(app_name="recursum", prefix="recursum_http", group_path=True,
                                  exclude=["/metrics"])
    return Litestar(
        route_handlers=_configure_routes(),
        dependencies=_configure_dependencies(),
        exception_handlers={Exception: problem_response},
        guards=[scope_guard],
        middleware=_configure_middleware(settings, prometheus),
        lifespan=[_model_worker(engine)],
        state=state,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(title="recursum", version="0.1.0", path="/schema"),
    )


def _configure_middleware(settings: ServiceSettings, prometheus: PrometheusConfig) -> list[object]:
    hosts = [AllowedHosts(settings.allowed_hosts)] if settings.allowed_hosts else []
    return [*hosts, RefuseNul(), prometheus.middleware]


def _configure_routes() -> list:
    return [SummaryController, EstimateController, ReportController, EvaluationController,
            ComparisonController, AdapterController, evaluate_page, evaluate_static(), healthz, readyz,
            metrics]


def _configure_dependencies() -> dict[str, Provide]:
    def summaries(state: State) -> SummaryService:
        return SummaryService(state.store, state.settings)

    def reports(state: State) -> ReportService:
        return ReportService(state.store)

    def evaluations(state: State) -> EvaluationService:
        settings = state.settings
        policy = EvaluationPolicy(lease_seconds=settings.evaluation_lease_seconds,
                                  overlap=settings.evaluation_overlap, gold_rate=settings.gold_rate)
        return EvaluationService(state.store, policy, lambda: state.worker.engine)

    return {"summaries": Provide(summaries, sync_to_thread=False),
            "reports": Provide(reports, sync_to_thread=False),
            "evaluations": Provide(evaluations, sync_to_thread=False)}


def _model_worker(engine: Engine | None):
    """Starts the worker (which loads the model on its thread) and stops it at shutdown."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        state = app.state
        if state.settings.dev_mode:
            log.warning("DEV MODE: serving without API keys; every caller is admin")
        settings = state.settings
        keys = {key.name: key.secret_sha256 for key in settings.api_keys}
        callbacks = CallbackDeliverer(
            state.store, keys, settings.callback_targets(), settings.replica_id,
            attempts=settings.callback_attempts, first_delay=settings.callback_first_delay,
            lease_seconds=settings.lease_seconds,
            on_outcome=lambda outcome: state.metrics.callbacks.labels(outcome=outcome).inc())
        state.worker = JobWorker(state.store, lambda: engine or load_engine(state.settings.model),
                                 state.broker, state.metrics, callbacks,
                                 max_active=state.settings.max_active_jobs,
                                 replica_id=state.settings.replica_id,
                                 lease_seconds=state.settings.lease_seconds,
                                 max_attempts=state.settings.max_attempts)
        callbacks.start()
        state.worker.start()
        _switch_on_hangup(state)
        try:
            yield
        finally:
            await sync_to_thread(state.worker.stop)
            await sync_to_thread(callbacks.stop)

    return lifespan


def _switch_on_hangup(state: State) -> None:
    """SIGHUP serves the bundle at the configured path (RECURSUM_ADAPTERS or --adapters), read again with
    its links resolved: repoint a `current` link at a new bundle and signal any replica to switch them all
    (a running process's environment cannot be changed from outside; a link can)."""
    def hangup() -> None:
        directory = state.settings.model.bundle_directory()
        state.worker.activate(os.path.realpath(directory) if directory else None, "SIGHUP")

    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, hangup)
    except (NotImplementedError, RuntimeError, ValueError, AttributeError):  # not the main thread, or Windows
        log.info("SIGHUP is not handled here: switch adapter bundles with POST /v1/admin/adapters")
