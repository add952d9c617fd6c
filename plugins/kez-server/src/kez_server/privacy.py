"""What the server's logs may say about people (seeds 000: "log demotion + salted hash").

A handle, a routing id, an identity key or a client address in a log file
encodes the social graph for as long as the file lives. So at INFO nothing
of them is written (uvicorn's access log included: its client address and
the identifying part of the path are replaced), and DEBUG writes a hash
salted with random bytes drawn once per process: lines of one run can be
correlated while debugging, lines of two runs (or two nodes) cannot, and
no log names a handle in clear.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re

_SALT = os.urandom(16)

# The path segments that name a person: a handle, a key id, an identity.
_PERSONAL = re.compile(r"^(/v1/(?:u|inbox|by-primary)/|/v1/sigchains/[^/?]+/)([^/?]+)(.*)\Z")


def pseudonym(text: str) -> str:
    """`h:<12 hex>`: the same text gives the same value within this process only."""
    return (
        "h:"
        + hashlib.blake2b(text.encode("utf-8", "replace"), key=_SALT, digest_size=6).hexdigest()
    )


# A key id or routing id in a message (refusal reasons name the identity and the key).
_IDS = re.compile(r"\b(?:[a-z0-9]+:)?[0-9a-fA-F]{32,}\b|\bU[A-Z2-7]{55}\b")


def shown(text: str, logger: logging.Logger) -> str:
    """How `logger` may name a person or address: a pseudonym when it logs DEBUG, else `…`.

    For a line logged at INFO or above: an operator running at INFO sees
    that something happened, never to whom.
    """
    return pseudonym(text) if logger.isEnabledFor(logging.DEBUG) else "…"


def redact_ids(text: str, logger: logging.Logger) -> str:
    """`text` with every key id, routing id or NATS user nkey replaced as `shown` does."""
    return _IDS.sub(lambda m: shown(m.group(0), logger), text)


def redact_path(path: str, *, debug: bool = False) -> str:
    """`path` without its query and with the personal segment replaced (hashed when `debug`)."""
    path = path.split("?", 1)[0]
    match = _PERSONAL.match(path)
    if match is None:
        return path
    hidden = pseudonym(match.group(2)) if debug else "…"
    return match.group(1) + hidden + match.group(3)


class AccessLogFilter(logging.Filter):
    """Rewrites uvicorn's access records: no client address, no personal path segment.

    uvicorn logs `'%s - "%s %s HTTP/%s" %d'` with (client, method, path,
    version, status); the record is changed in place before any handler
    formats it, so every handler and formatter sees the redacted form.
    """

    def __init__(self, debug: bool = False) -> None:
        super().__init__("kez-privacy")
        self.debug = debug

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            client, method, path, version, status = args
            shown_client = pseudonym(str(client)) if self.debug else "-"
            record.args = (
                shown_client,
                method,
                redact_path(str(path), debug=self.debug),
                version,
                status,
            )
        return True


def install(debug: bool = False) -> None:
    """Put the filter on uvicorn's access logger (once per process; the newest `debug` wins)."""
    logger = logging.getLogger("uvicorn.access")
    for existing in logger.filters:
        if isinstance(existing, AccessLogFilter):
            existing.debug = debug
            return
    logger.addFilter(AccessLogFilter(debug))
