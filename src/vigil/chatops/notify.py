"""Post messages to whatever chat the user configured, through Apprise URLs (Slack, Teams, Mattermost,
Matrix, email, plain JSON webhooks, ...)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import apprise

from vigil.errors import ConfigError

log = logging.getLogger(__name__)

MAX_BODY_CHARS = 3500  # Slack and Teams truncate or reject much longer messages


class AppriseNotifier:
    """Send one message to every configured Apprise URL.

    Parameters
    ----------
    urls : sequence of str
        Apprise URLs, e.g. ``slack://T/B/C``, ``mmost://host/token``, ``json://host:port/path``.
    """

    def __init__(self, urls: Sequence[str]) -> None:
        self.urls = list(urls)
        self._apprise = apprise.Apprise()
        for url in self.urls:
            if not self._apprise.add(url):
                # Only the scheme: the rest of an Apprise URL usually holds a token.
                raise ConfigError(f"Apprise cannot use the URL with scheme {url.split(':', 1)[0]!r}")

    @property
    def enabled(self) -> bool:
        return bool(self.urls)

    def notify(self, title: str, body: str, *, failure: bool = False) -> bool:
        """True when every target accepted the message."""
        if not self.urls:
            return False
        if len(body) > MAX_BODY_CHARS:
            body = body[: MAX_BODY_CHARS - 20] + "\n... (truncated)"
        ok = self._apprise.notify(
            title=title[:250],
            body=body,
            notify_type=apprise.NotifyType.FAILURE if failure else apprise.NotifyType.INFO,
            body_format=apprise.NotifyFormat.TEXT,
        )
        if not ok:
            log.warning("Apprise could not deliver %r to at least one of %d target(s)", title, len(self.urls))
        return bool(ok)
