"""Standard Webhooks signatures (webhook-id, webhook-timestamp, webhook-signature)."""

import base64
import secrets

from standardwebhooks import Webhook

from ..models import utcnow


def new_secret():
    """Return a fresh endpoint secret, `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def signed_headers(secret, msg_id, body, now=None):
    """Return the headers that let a receiver verify `body` (a str) with the endpoint's secret."""
    now = now or utcnow()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body),
    }
