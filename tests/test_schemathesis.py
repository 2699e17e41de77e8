"""Property-based requests generated from the served OpenAPI schema never get a 5xx."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from test_server_process import Server

pytestmark = pytest.mark.integration  # a `recursum serve` process


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    home = tmp_path_factory.mktemp("schemathesis")
    server = Server(home, tiny_model_dir, f"sqlite:///{home / 'service.db'}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api_schema(server):
    return schemathesis.openapi.from_url(f"{server.url}/schema/openapi.json")


def test_generated_requests_never_get_a_server_error(api_schema):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert operations
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        def never_5xx(case):
            response = case.call()
            assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:300]}"

        never_5xx()
