"""`train levels --hook URL`: after each stage, the stage's outcome POSTed to a URL, signed like job
callbacks (Standard Webhooks, `service/jobs/signing.py`) with the secret in RECURSUM_TRAIN_HOOK_SECRET, so a
pipeline can react (evaluate the bundle, activate it, page someone). A hook that cannot be delivered is
logged and training goes on: the stage is recorded in the bundle either way."""

import logging
import os
import uuid

import httpx
import msgspec

from recursum.service.engine.models.bundle import AdapterEntry
from recursum.service.jobs.signing import signed_headers

log = logging.getLogger("recursum.train.hook")
SECRET_VARIABLE = "RECURSUM_TRAIN_HOOK_SECRET"


class StageDone(msgspec.Struct, kw_only=True):
    """What the hook receives: the stage that finished, its adapter (role, heights, method, metrics) or the
    comparisons it wrote, and where the curriculum stands."""

    stage: str  # e.g. "reward:0", "policy:1", "helper"
    bundle: str  # the bundle directory, loadable as it is now
    adapter: AdapterEntry | None = None
    comparisons: int | None = None  # a synth stage's
    finished: list[str]
    remaining: list[str]


class StageHook:
    """POSTs each `StageDone` to `url`; connection failures are retried by httpx's transport."""

    def __init__(self, url: str, secret: str, timeout: float = 10.0, retries: int = 3) -> None:
        if not secret.startswith("whsec_"):
            raise ValueError(f"{SECRET_VARIABLE} must be a Standard Webhooks secret (whsec_ + base64)")
        self.url = url
        self.secret = secret
        self.http = httpx.Client(transport=httpx.HTTPTransport(retries=retries), timeout=timeout,
                                 follow_redirects=False)

    @classmethod
    def from_environment(cls, url: str) -> "StageHook":
        secret = os.environ.get(SECRET_VARIABLE)
        if not secret:
            raise ValueError(f"--hook needs the signing secret in {SECRET_VARIABLE} (whsec_ + base64): "
                             "stage hooks are never sent unsigned")
        return cls(url, secret)

    def __call__(self, done: StageDone) -> None:
        body = msgspec.json.encode(done).decode()
        try:
            response = self.http.post(self.url, content=body.encode(),
                                      headers=signed_headers(f"msg_{uuid.uuid4().hex}", self.secret, body))
        except httpx.HTTPError as error:
            log.warning("stage hook for %s not delivered: %s", done.stage, error)
            return
        if response.is_error:
            log.warning("stage hook for %s answered %s", done.stage, response.status_code)
