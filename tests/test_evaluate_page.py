"""The evaluator page in a real headless Chromium against a real server: open a report, choose B, submit.

Uses Debian's `chromium` (installed by .ci/run) driven by Playwright's bundled driver; Playwright's own
browser downloads are never used. Skips, saying why, where either is missing. The screenshot is saved to
tests/artifacts/evaluate-page.png (or $RECURSUM_TEST_ARTIFACTS/evaluate-page.png).
"""

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import uvicorn
from litestar.testing import TestClient
from loopback_server import free_port, wait_ready
from test_evaluations import KEYS, LEAF_0, LEAF_1, seed_job

from recursum.service.api.app import create_app
from recursum.service.api.evaluations.page import SECURITY_HEADERS
from recursum.service.engine.facade import ModelEngine
from recursum.service.engine.models.runtime import load_runtime
from recursum.service.engine.models.spec import ModelSpec
from recursum.service.settings import ServiceSettings, parse_api_keys
from recursum.service.store.repository import Store

ARTIFACTS = Path(os.environ.get("RECURSUM_TEST_ARTIFACTS") or Path(__file__).with_name("artifacts"))


def test_the_page_and_its_assets_are_served_with_a_strict_content_security_policy(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'page.db'}")
    settings = ServiceSettings(api_keys=parse_api_keys(KEYS), model=ModelSpec(base=str(tmp_path / "absent")))
    with TestClient(create_app(settings, store=store)) as client:
        page = client.get("/evaluate")
        script = client.get("/evaluate/static/evaluate.js")
        style = client.get("/evaluate/static/evaluate.css")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == SECURITY_HEADERS["Content-Security-Policy"]
    assert "<script" in page.text and "script-src 'self'" in page.headers["content-security-policy"]
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert style.status_code == 200 and "innerHTML" not in script.text  # model text is set as text only
    store.close()


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra has it)")
    return path


@pytest.fixture
def server(tmp_path, tiny_model_dir, evidence_scorer) -> Iterator[tuple[str, Store]]:
    """The real app under uvicorn on a loopback port (in a thread), with keys and a store we can seed."""
    store = Store(f"sqlite:///{tmp_path / 'service.db'}")
    runtime = load_runtime(ModelSpec(base=str(tiny_model_dir), quantization="none"))
    engine = ModelEngine(runtime, evidence_scorer)
    app = create_app(ServiceSettings(api_keys=parse_api_keys(KEYS)), engine=engine, store=store)
    port = free_port()
    uvicorn_server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, timeout=60)
    yield url, store
    uvicorn_server.should_exit = True
    thread.join(timeout=30)
    store.close()


@pytest.mark.integration
def test_an_evaluator_opens_a_report_chooses_b_and_the_comparison_is_stored(server):
    from playwright.sync_api import expect, sync_playwright

    executable = _chromium()
    url, store = server
    # Leaf 0's chosen summary beside its candidate with two unsupported sentences.
    seed_job(store, nodes=(msgspec.structs.replace(LEAF_0, candidates=LEAF_0.candidates[1:]), LEAF_1))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"], headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("console", lambda message: message.type == "error" and problems.append(message.text))
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("response", lambda response: response.status >= 400 and problems.append(
                f"{response.status} {response.url}"))
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.goto(f"{url}/evaluate#key=e-secret")  # a fragment: the key never reaches the server
            expect(page.locator("#task")).to_be_visible()
            expect(page.locator("#figures")).to_contain_text("Your record: 0 judged")
            assert requested and not [u for u in requested if "e-secret" in u], "no address carries the key"
            assert "key=" not in page.url  # the key left the address bar (it stays in sessionStorage)
            expect(page.locator(".side li.unsupported")).to_have_count(2)

            page.get_by_role("button", name="Evidence", exact=False).first.click()
            expect(page.locator("#report-body li").first).to_be_visible()
            expect(page.locator("#opened")).not_to_have_text("none")

            page.keyboard.press("b")
            expect(page.locator("#choose-b")).to_have_class("selected")
            page.screenshot(path=str(ARTIFACTS / "evaluate-page.png"), full_page=True)
            page.keyboard.press("Enter")
            expect(page.locator("#status")).to_contain_text("Saved comparison")
            saved = page.evaluate("document.body.dataset.saved")
            page.locator("#next").click()
            expect(page.locator("#figures")).to_contain_text("Your record: 1 judged")
        finally:
            browser.close()
    assert problems == []  # no script errors, no content-security-policy violations
    comparison = store.evaluations.get_comparison(saved)
    assert comparison.preference == "1" and comparison.evaluator == "eve"
    assert comparison.reports_opened
    reports = store.evaluations.node_reports(comparison.job_id, comparison.node_id)
    opened = [report for report in reports if report.id in comparison.reports_opened]
    assert [report.kind for report in opened] == ["evidence"]  # a report of the task's node, as stored
