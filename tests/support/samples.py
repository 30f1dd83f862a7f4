"""Response bodies as the seed documents them and as the live server sends them.

Every body here is read from ``contracts/live-bodies.json`` (through
``tests/support/live_facts.py``), where each one names its source;
``contracts/live-server-facts.md`` explains them. The ids are made up, and are the ones the
sample payloads there use.
"""

from __future__ import annotations

import math
import re

from tests.support import live_facts

SESSION_ID = "3f0c6f1e-8a2b-4c1d-9e3f-5a6b7c8d9e0f"
EVENT_ID = "7a1b2c3d-0000-4000-8000-00000000e001"
MACHINE_ID = "11111111-2222-4333-8444-555555555555"
TUNNEL_URL = "https://ta-01jsecretlabel.r5.modal.host"

# The live server's SessionResponse: url null while starting, naive timeout_end meaning UTC,
# org_id the literal string "None", gpu a plain string.
LIVE_SESSION = live_facts.sample("live_session")
LIVE_SESSION_READY = LIVE_SESSION.replace('"url": null', f'"url": "{TUNNEL_URL}"')

# The seed's 3-field Session, and a seed list element (GPUEventModel).
SEED_SESSION = live_facts.sample("seed_session")
SEED_EVENT = live_facts.sample("seed_event")

CREATED = live_facts.sample("created")
DELETED = live_facts.body("cancel", "success")

NOT_FOUND = live_facts.body("get", "unknown, ended or another account's id")
UNAUTHORIZED = live_facts.body("any", "missing or bad bearer")
TOO_MANY = live_facts.body("create", "too many live sessions on the machine")
MACHINE_NOT_FOUND = live_facts.body("create", "unknown machine")
_MISSING_MACHINE, _UNKNOWN_GPU, *_ = live_facts.invalid_requests()
UNPROCESSABLE_MISSING = _MISSING_MACHINE.response
UNPROCESSABLE_ENUM = _UNKNOWN_GPU.response

#: A JSON body with invalid UTF-8 inside its strings.
INVALID_UTF8 = b'{"session_id": "\xff\xfe", "gpu_event_id": "e", "detail": "bad \xc3\x28 text"}'

# Any scheme://… that is not masked: what no log line may hold.
UNMASKED_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(?!<masked>)")

#: Values no number of seconds may be: each must be refused, never raised on.
BAD_SECONDS = [math.nan, -1, -0.001, math.inf, -math.inf, True, False, "5", None, [], -(10**400)]
