"""Standard Webhooks signing (standardwebhooks.com), shared by job-end callbacks and training stage hooks:
`webhook-id`, `webhook-timestamp` and `webhook-signature: v1,BASE64(HMAC-SHA256(secret, "{id}.{ts}.{body}"))`,
so receivers verify with any Standard Webhooks library."""

import base64
from datetime import UTC, datetime

from standardwebhooks import Webhook


def signing_secret(key_sha256: str) -> str:
    """The Standard Webhooks secret for an API key, from the sha256 hex digest the server keeps."""
    return "whsec_" + base64.b64encode(bytes.fromhex(key_sha256)).decode()


def signed_headers(message_id: str, secret: str, body: str) -> dict[str, str]:
    """The headers of one signed POST of `body`: the message id, now, and the signature over both and the
    body with `secret` (`whsec_…`)."""
    now = datetime.now(UTC)
    return {"content-type": "application/json", "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(message_id, now, body)}
