"""Keeps secret base URLs (sessions' ComfyUI tunnels) out of urllib3's own log lines.

urllib3 logs, at DEBUG, the host it connects to and each request line (``http://host:port
"GET /path HTTP/1.1" 200``): for a session's URL both can be the secret (the tunnel's host; a
path, on the fake). The transport :func:`remember`\\ s every secret base URL it sends to, and a
filter on urllib3's loggers masks those parts in any record before a handler sees it.
"""

from __future__ import annotations

import logging
from typing import Final
from urllib.parse import urlsplit

from cdsessions._core.servers import is_loopback_host

__all__ = ["MASK", "remember"]

MASK: Final = "<session-url>"
#: The loggers whose records can name what urllib3 connects to.
_LOGGERS: Final = ("urllib3.connectionpool", "urllib3.connection")
#: Kept small: a process talks to a few sessions. Cleared whole (one atomic step, no lock) when
#: full; a secret sent again is remembered again before its request is logged.
_MAX_REMEMBERED: Final = 256
# Plain dict operations are atomic under the GIL: no lock, so nothing to reset after a fork.
_secrets: dict[str, None] = {}


def _parts(base_url: str) -> list[str]:
    """What of ``base_url`` urllib3 may log: its host (unless loopback: not secret, and every
    other local request names it too) and its path."""
    split = urlsplit(base_url)
    parts = []
    if split.hostname and not is_loopback_host(split.hostname):
        parts.append(split.hostname)
    path = split.path.strip("/")
    if path:
        parts.append(path)
    return parts


def remember(base_url: str) -> None:
    """Mask ``base_url``'s host and path in urllib3's log records from now on."""
    if len(_secrets) >= _MAX_REMEMBERED:
        _secrets.clear()
    for part in _parts(base_url):
        _secrets[part] = None
    _install()


def _masked(value: object, secrets: list[str]) -> object:
    if not isinstance(value, str):
        return value
    for secret in secrets:
        value = value.replace(secret, MASK)
    return value


class _MaskSecretUrls(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        secrets = sorted(_secrets.copy(), key=len, reverse=True)  # longest first
        if not secrets:
            return True
        if isinstance(record.args, tuple):
            record.args = tuple(_masked(arg, secrets) for arg in record.args)
        record.msg = _masked(record.msg, secrets)
        return True


_FILTER: Final = _MaskSecretUrls()


def _install() -> None:
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
