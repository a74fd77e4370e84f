"""Slack request verification: v0 HMAC-SHA256 signatures, a freshness window and replay protection.

Slack signs ``v0:{X-Slack-Request-Timestamp}:{raw body}`` with the app's signing secret and sends
``X-Slack-Signature: v0=<hex>``. A request is accepted once: a captured request replayed within the
freshness window is rejected by its signature, and anything older is rejected by its timestamp.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from vigil.errors import Unauthorized


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class SlackVerifier:
    """Checks one request's signature and freshness, and remembers it to refuse a replay.

    Examples
    --------
    >>> v = SlackVerifier("s3cret", clock=lambda: 1_700_000_000)
    >>> v.verify("1700000000", slack_signature("s3cret", "1700000000", b"text=status"), b"text=status")
    """

    def __init__(
        self,
        signing_secret: str,
        *,
        max_age_s: float = 300.0,
        clock: Callable[[], float] = time.time,
        max_remembered: int = 100_000,
    ) -> None:
        self.signing_secret = signing_secret
        self.max_age_s = max_age_s
        self.clock = clock
        self.max_remembered = max_remembered
        self._seen: OrderedDict[str, float] = OrderedDict()  # signature -> request timestamp
        self._lock = threading.Lock()

    def verify(self, timestamp: str | None, signature: str | None, body: bytes) -> None:
        """Raise :class:`~vigil.errors.Unauthorized` unless the request is authentic, fresh and new."""
        if not self.signing_secret:
            raise Unauthorized("Slack commands are disabled", hint="set slack_signing_secret")
        if not timestamp or not signature:
            raise Unauthorized("missing Slack signature headers")
        try:
            ts = int(timestamp)
        except ValueError:
            raise Unauthorized("malformed Slack request timestamp") from None
        now = self.clock()
        if abs(now - ts) > self.max_age_s:
            raise Unauthorized("stale Slack request (timestamp outside the 5-minute window)")
        expected = slack_signature(self.signing_secret, timestamp, body)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise Unauthorized("bad Slack signature")
        with self._lock:
            self._forget_older_than(now - self.max_age_s)
            if signature in self._seen:
                raise Unauthorized("replayed Slack request")
            self._seen[signature] = ts
            while len(self._seen) > self.max_remembered:
                self._seen.popitem(last=False)

    def _forget_older_than(self, cutoff: float) -> None:
        stale = [sig for sig, ts in self._seen.items() if ts < cutoff]
        for sig in stale:
            del self._seen[sig]
