"""Property-based requests generated from the served OpenAPI schema never get a 5xx: against a server with
API keys (the production path, not dev mode), with the submission body fuzzed in all three of its forms."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from test_server_process import Server

pytestmark = pytest.mark.integration  # a `recursum serve` process

ADMIN_SECRET = "a" * 40
SUBMISSION_FORMS = ("application/json", "text/plain", "multipart/form-data")


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    home = tmp_path_factory.mktemp("schemathesis")
    env = {"RECURSUM_API_KEYS": f"root:{ADMIN_SECRET}:admin+summarize+evaluate",
           "RECURSUM_MAX_JOBS_PER_KEY": "1000", "RECURSUM_MAX_QUEUE": "1000"}
    server = Server(home, tiny_model_dir, f"sqlite:///{home / 'service.db'}", env)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api_schema(server):
    return schemathesis.openapi.from_url(f"{server.url}/schema/openapi.json")


def _never_5xx(strategy, auth: dict[str, str], statuses: set[int]) -> None:
    @given(case=strategy)
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    def never_5xx(case):
        response = case.call(headers=auth)
        statuses.add(response.status_code)
        assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:300]}"

    never_5xx()


def test_the_submission_body_is_documented_in_each_of_its_forms(api_schema):
    operation = api_schema["/v1/summaries"]["POST"]
    assert {body.media_type for body in operation.body} == set(SUBMISSION_FORMS)


def test_generated_requests_never_get_a_server_error(api_schema):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert operations
    auth = {"Authorization": f"Bearer {ADMIN_SECRET}"}
    for operation in operations:
        statuses: set[int] = set()
        forms = SUBMISSION_FORMS if (operation.method.upper(), operation.path) == ("POST", "/v1/summaries") \
            else (None,)
        for form in forms:
            _never_5xx(operation.as_strategy(media_type=form), auth, statuses)
        assert statuses != {401}, f"{operation.method} {operation.path}: the key was never accepted"
