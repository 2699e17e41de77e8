"""Job-end callbacks: the outbox (`store.callbacks`) delivered on a thread of its own, so a slow receiver
never holds up the model worker, and a restart or a dead replica loses no callback.

Each attempt POSTs the job's `finished` event in the Standard Webhooks format (standardwebhooks.com):
`webhook-id` (the same on every retry, so a receiver drops repeats), `webhook-timestamp` and
`webhook-signature: v1,BASE64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}"))`. The secret is the sha256
digest of the submitter's API key (the server stores only that digest), so the receiver's library takes
`"whsec_" + base64(sha256(api_key))`. With no key to sign with, nothing is sent.

Before each attempt the host is resolved and the connection goes to the address checked
(`callback_targets`); redirects are not followed, the response body is never read, and the whole attempt
has a deadline, so a receiver dripping one byte at a time holds nothing.
"""

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import msgspec

from recursum.schemas.events import JobFinished
from recursum.schemas.jobs import CallbackAttempt, CallbackOutcome
from recursum.service.jobs.callback_targets import CallbackTargets, TargetRefused
from recursum.service.jobs.signing import signed_headers, signing_secret
from recursum.service.jobs.views import job_read
from recursum.service.store.callbacks import CallbackDelivery
from recursum.service.store.repository import Store

log = logging.getLogger("recursum.callbacks")


async def post_pinned(url: httpx.URL, targets: CallbackTargets, body: str, headers: dict[str, str],
                      deadline: float) -> int:
    """POST to the address `url`'s host resolves to, once that address is allowed; the status code.

    Raises `TargetRefused`, `httpx.HTTPError` or `TimeoutError`."""
    async with asyncio.timeout(deadline):
        infos = await asyncio.get_running_loop().getaddrinfo(url.host, url.port or None,
                                                             type=socket.SOCK_STREAM)
        address = targets.pick_address(infos)
        # TLS still checks the certificate against the name (sni_hostname), not the address.
        extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
        async with httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=deadline) as client:
            request = client.build_request("POST", url.copy_with(host=address), content=body.encode(),
                                           headers={**headers, "host": url.netloc.decode()},
                                           extensions=extensions)
            response = await client.send(request, stream=True)
            await response.aclose()  # the body is never read
            return response.status_code


class CallbackDeliverer:
    """Leases due deliveries from the outbox and sends up to `parallel` at once, each with retries and
    exponential backoff across `attempts`."""

    def __init__(self, store: Store, keys: dict[str, str], targets: CallbackTargets,
                 replica_id: str = "local", attempts: int = 12, first_delay: float = 2.0,
                 deadline: float = 10.0, lease_seconds: float = 30.0, parallel: int = 4,
                 on_outcome: Callable[[CallbackOutcome], None] | None = None) -> None:
        self.store = store
        self.keys = keys
        self.targets = targets
        self.replica_id = replica_id
        self.attempts = attempts
        self.first_delay = first_delay
        self.deadline = deadline
        self.lease_seconds = max(lease_seconds, 2 * deadline)
        self.parallel = parallel
        self.on_outcome = on_outcome  # told of every attempt's outcome (metrics)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="recursum-callbacks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)

    def notify(self) -> None:
        """A job ended: its callback may be due."""
        self._wake.set()

    def _loop(self) -> None:
        with ThreadPoolExecutor(self.parallel, thread_name_prefix="callback") as pool:
            while not self._stopping.is_set():
                try:
                    due = self.store.callbacks.claim_due(self.replica_id, self.parallel, self.lease_seconds)
                    list(pool.map(self.deliver, due))
                except Exception:  # a database hiccup: the leases expire and the deliveries are retried
                    log.exception("callback delivery round failed")
                    due = []
                if not due:
                    self._wake.wait(timeout=1.0)
                    self._wake.clear()

    def deliver(self, delivery: CallbackDelivery) -> CallbackOutcome:
        """One attempt at `delivery`, recorded with when to retry."""
        number = delivery.attempts + 1
        key = self.keys.get(delivery.owner)
        outcome: CallbackOutcome = "unsigned" if key is None else self._post(delivery, key)
        retry = outcome in ("rejected", "unreachable") and number < self.attempts
        retry_at = time.time() + self.first_delay * 2 ** (number - 1) if retry else None
        attempt = CallbackAttempt(attempt=number, at=time.time(), outcome=outcome)
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        if not self.store.callbacks.record_attempt(delivery, self.replica_id, attempt, retry_at):
            log.info("callback %s: job deleted or delivery taken over; not recorded", delivery.id)
        elif outcome != "delivered" and retry_at is None:
            log.warning("callback for job %s gave up after %d attempts (%s)", delivery.job_id, number,
                        outcome)
        return outcome

    def _post(self, delivery: CallbackDelivery, key: str) -> CallbackOutcome:
        body = delivery.body
        if body is None:
            job = self.store.jobs.get_job(delivery.job_id)
            body = msgspec.json.encode(JobFinished(job=job_read(self.store, job))).decode()
            self.store.callbacks.set_body(delivery.id, body)
        try:
            url = self.targets.check_url(delivery.url)  # the settings may have changed since submit
            headers = signed_headers(delivery.id, signing_secret(key), body)
            status = asyncio.run(post_pinned(url, self.targets, body, headers, self.deadline))
        except TargetRefused as error:
            log.warning("callback %s refused: %s", delivery.id, error)
            return "refused"
        except (httpx.HTTPError, OSError, TimeoutError) as error:
            log.info("callback %s unreachable: %s: %s", delivery.id, type(error).__name__, error)
            return "unreachable"
        log.info("callback %s answered %d", delivery.id, status)
        return "delivered" if 200 <= status < 300 else "rejected"
