"""The whole loop on the tiny model through a real server: jobs with best_of, evaluators' comparisons
through the API, `recursum train from-service` (export, training, held-out figures, activation), and a new
job whose nodes carry the new reward adapter's rewards; a second turn with nothing new trains nothing."""

import json
import time

import httpx
import pytest
from bundles import make_bundle
from click.testing import CliRunner
from test_server_process import Server

from recursum.training.cli import train

pytestmark = pytest.mark.integration  # a `recursum serve` process and training runs

OPTIONS = {"chunk_tokens": 40, "summary_tokens": 12, "best_of": 3, "evaluation": True}


def _story(n: int) -> str:
    return "\n\n".join(f"Part {i} of tale {n}. The Rabbit {i} ran past Alice and the Queen shouted."
                       for i in range(3))


def _wait_done(server: Server, job_id: str, timeout: float = 120) -> dict:
    deadline = time.time() + timeout
    while (job := httpx.get(f"{server.url}/v1/summaries/{job_id}").json())["status"] != "done":
        assert job["status"] in ("queued", "running") and time.time() < deadline, job
        time.sleep(0.2)
    return job


def _judge_every_task(server: Server) -> int:
    """An evaluator who always prefers the best-of-n alternative over the served pick."""
    judged = 0
    while (task := httpx.get(f"{server.url}/v1/evaluations/tasks")).status_code == 200:
        candidates = task.json()["candidates"]
        alternative = next(i for i, side in enumerate(candidates) if side["ref"] != "summary")
        answer = httpx.post(f"{server.url}/v1/comparisons", json={"task": task.json()["id"],
                                                                   "preference": alternative})
        assert answer.status_code == 201, answer.text
        judged += 1
    return judged


def _from_service(server: Server, tiny_model_dir, work) -> dict:
    result = CliRunner().invoke(train, [
        "from-service", "--server", server.url, "--base", str(tiny_model_dir), "--quantization", "none",
        "--max-steps", "8", "--batch-size", "2", "--lr", "1e-3", "--held-out", "0.34", "--out", str(work)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_comparisons_become_an_activated_bundle_whose_rewards_new_jobs_carry(tmp_path, tiny_model_dir):
    served = make_bundle(tiny_model_dir, tmp_path / "served", {"chunk": 1})
    server = Server(tmp_path / "home", tiny_model_dir, f"sqlite:///{tmp_path / 'loop.db'}",
                    env={"RECURSUM_ADAPTERS": str(served)})
    try:
        for n in range(3):
            job = httpx.post(f"{server.url}/v1/summaries", json={"text": _story(n), "options": OPTIONS})
            _wait_done(server, job.json()["id"])
        assert _judge_every_task(server) >= 6

        report = _from_service(server, tiny_model_dir, tmp_path / "work")
        assert report["exported"] >= 6 and report["held_out_pairs"] > 0
        assert report["served_basis"] == "served picks" and report["served_accuracy"] == 0.0
        assert report["activated"] and report["new_accuracy"] > 0.0, report
        adapters = httpx.get(f"{server.url}/v1/admin/adapters").json()
        assert adapters["served"]["directory"] == report["bundle"] == adapters["directory_here"]
        assert adapters["previous"]["directory"] == str(served.resolve())

        job = httpx.post(f"{server.url}/v1/summaries", json={"text": _story(9), "options": OPTIONS}).json()
        assert _wait_done(server, job["id"])["bundle"] == adapters["serving_here"]
        nodes = httpx.get(f"{server.url}/v1/summaries/{job['id']}/tree").json()["nodes"]
        generated = [node for node in nodes if not node["composed"]]
        assert generated and all(node["reward"] is not None for node in generated)
        leaf = next(node for node in generated if node["role"] == "chunk")
        assert leaf["adapter_version"] is not None, "the copied chunk adapter still serves"

        again = _from_service(server, tiny_model_dir, tmp_path / "work")
        assert again["exported"] == 0 and not again["activated"] and again["bundle"] is None
    finally:
        server.stop()
