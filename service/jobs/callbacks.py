"""Job-end callbacks: the final event POSTed to the submitter's URL, HMAC-signed, retried with
backoff, every attempt recorded on the job. Redirects are not followed; the URL was checked against the
allowlist at submit (`recursum.service.api.callbacks`).

Signature: `X-Recursum-Signature: sha256=HEX` where HEX = HMAC-SHA256(key, f"{timestamp}.{body}"),
timestamp in `X-Recursum-Timestamp`. The key is the sha256 hex digest of the submitter's API key
(the receiver computes it from the key it holds; the server stores only that digest).
"""

import hashlib
import hmac
import logging
import threading
import time

import httpx

from recursum.schemas.jobs import CallbackAttempt
from recursum.service.settings import hash_secret
from recursum.service.store.repository import Store

log = logging.getLogger("recursum.callbacks")


def sign(key: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(key.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


class CallbackSender:
    """Delivers on background threads so a slow receiver never holds up the model worker."""

    def __init__(self, store: Store, keys: dict[str, str], attempts: int = 5, first_delay: float = 0.5,
                 timeout: float = 10.0) -> None:
        self.store = store
        self.keys = keys
        self.attempts = attempts
        self.first_delay = first_delay
        self.timeout = timeout

    def send(self, job_id: str, url: str, owner: str, body: bytes) -> threading.Thread:
        """Start delivering `body`, signed with the owner's key digest (dev mode: sha256("dev"))."""
        key = self.keys.get(owner) or hash_secret(owner)
        thread = threading.Thread(target=self._deliver, args=(job_id, url, key, body),
                                  name=f"callback-{job_id[:8]}", daemon=True)
        thread.start()
        return thread

    def _deliver(self, job_id: str, url: str, key: str, body: bytes) -> None:
        delay = self.first_delay
        with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:
            for attempt in range(1, self.attempts + 1):
                timestamp = str(int(time.time()))
                headers = {"Content-Type": "application/json", "X-Recursum-Timestamp": timestamp,
                           "X-Recursum-Signature": sign(key, timestamp, body)}
                record = CallbackAttempt(attempt=attempt, at=time.time())
                try:
                    response = client.post(url, content=body, headers=headers)
                    record.status_code = response.status_code
                except (httpx.HTTPError, httpx.InvalidURL) as error:
                    record.error = f"{type(error).__name__}: {error}"
                try:
                    self.store.jobs.add_callback_attempt(job_id, record)
                except Exception:  # the job was deleted meanwhile: stop delivering for it
                    log.info("job %s is gone; callback delivery stops", job_id)
                    return
                if record.status_code is not None and 200 <= record.status_code < 300:
                    return
                time.sleep(delay)
                delay *= 2
        log.warning("callback for job %s gave up after %d attempts", job_id, self.attempts)
