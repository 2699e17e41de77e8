"""Every route declares who may call it: a scope, or the explicit public marker; a route that declares
neither is served to nobody, so no route becomes public by omission."""

import pytest
from fake_engine import FakeEngine
from litestar import Litestar, get
from litestar.testing import TestClient

from recursum.service.api.app import create_app
from recursum.service.api.auth import scope_guard
from recursum.service.api.problems import problem_response
from recursum.service.settings import ServiceSettings, parse_api_keys
from recursum.service.store.repository import Store

PUBLIC = "public"
EXPECTED = {
    ("POST", "/v1/summaries"): "summarize",
    ("POST", "/v1/estimates"): "summarize",
    ("GET", "/v1/summaries/{job_id:str}"): "summarize",
    ("DELETE", "/v1/summaries/{job_id:str}"): "summarize",
    ("GET", "/v1/summaries/{job_id:str}/events"): "summarize",
    ("GET", "/v1/summaries/{job_id:str}/tree"): "summarize",
    ("GET", "/v1/summaries/{job_id:str}/nodes/{node_id:str}"): "summarize",
    ("POST", "/v1/summaries/{job_id:str}/nodes/{node_id:str}/reports"): "evaluate",
    ("GET", "/v1/summaries/{job_id:str}/nodes/{node_id:str}/reports"): ("evaluate", "summarize"),
    ("GET", "/v1/summaries/{job_id:str}/nodes/{node_id:str}/reports/{report_id:str}"): ("evaluate",
                                                                                         "summarize"),
    ("GET", "/v1/evaluations/tasks"): "evaluate",
    ("GET", "/v1/evaluations/stats"): "admin",
    ("GET", "/v1/evaluations/stats/me"): "evaluate",
    ("POST", "/v1/comparisons"): "evaluate",
    ("GET", "/v1/comparisons/{comparison_id:str}"): "evaluate",
    ("GET", "/v1/comparisons/export"): "admin",
    ("GET", "/v1/admin/adapters"): "admin",
    ("POST", "/v1/admin/adapters"): "admin",
    ("POST", "/v1/admin/adapters/rollback"): "admin",
    ("GET", "/evaluate"): PUBLIC,
    ("GET", "/evaluate/static/{file_path:path}"): PUBLIC,
    ("HEAD", "/evaluate/static/{file_path:path}"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
}


@pytest.fixture
def app(tmp_path):
    settings = ServiceSettings(api_keys=parse_api_keys("alice:a-secret:summarize"))
    return create_app(settings, engine=FakeEngine(), store=Store(f"sqlite:///{tmp_path / 'scopes.db'}"))


def test_every_route_declares_the_scope_this_table_gives_it(app):
    declared = {}
    for route in app.routes:
        if route.path.startswith("/schema"):  # Litestar's OpenAPI handlers: public, describe no data
            continue
        for handler in getattr(route, "route_handlers", []):
            for method in handler.http_methods - {"OPTIONS"}:
                declared[(method, route.path)] = handler.opt.get("scope") or (
                    PUBLIC if handler.opt.get("public") else None)
    assert declared == EXPECTED


def test_a_route_without_a_scope_or_the_public_marker_is_refused(tmp_path):
    @get("/forgotten")
    async def forgotten() -> str:
        return "secret"

    app = Litestar([forgotten], guards=[scope_guard], exception_handlers={Exception: problem_response})
    with TestClient(app) as client:
        response = client.get("/forgotten")
    assert response.status_code == 403
    assert "declares no scope" in response.json()["detail"]
