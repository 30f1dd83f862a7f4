"""Response bodies as the seed documents them and as the live server sends them (api-facts.md)."""

from __future__ import annotations

SESSION_ID = "3f0c6f1e-8a2b-4c1d-9e3f-5a6b7c8d9e0f"
EVENT_ID = "7a1b2c3d-0000-4000-8000-00000000e001"
MACHINE_ID = "11111111-2222-4333-8444-555555555555"
TUNNEL_URL = "https://ta-01jsecretlabel.r5.modal.host"

# The live server's SessionResponse: url null while starting, naive timeout_end meaning UTC,
# org_id the literal string "None", gpu a plain string.
LIVE_SESSION = f"""{{
  "id": "{SESSION_ID}", "session_id": "{SESSION_ID}", "gpu_event_id": "{EVENT_ID}",
  "url": null, "gpu": "A10G", "created_at": "2025-11-02T10:00:00.123456Z",
  "timeout": 15, "timeout_end": "2025-11-02T10:15:00.123456",
  "machine_id": "{MACHINE_ID}", "machine_version_id": null, "status": "running",
  "user_id": "user_2abc", "org_id": "None"
}}"""

LIVE_SESSION_READY = LIVE_SESSION.replace('"url": null', f'"url": "{TUNNEL_URL}"')

# The seed's 3-field Session.
SEED_SESSION = (
    f'{{"session_id": "{SESSION_ID}", "gpu_event_id": "{EVENT_ID}", "url": "{TUNNEL_URL}"}}'
)

SEED_EVENT = f"""{{
  "id": "{EVENT_ID}", "user_id": "user_2abc", "org_id": null, "machine_id": "{MACHINE_ID}",
  "start_time": "2025-11-02T10:00:00Z", "end_time": null, "gpu": "H100",
  "gpu_provider": "modal", "session_id": "{SESSION_ID}", "session_timeout": 15,
  "tunnel_url": "{TUNNEL_URL}", "created_at": "2025-11-02T10:00:00+01:00"
}}"""

CREATED = f'{{"session_id": "{SESSION_ID}", "url": null}}'
DELETED = '{"success": true}'

NOT_FOUND = '{"detail":"GPUEvent not found"}'
UNAUTHORIZED = '{"detail":"Invalid or missing token"}'
TOO_MANY = (
    '{"detail":"You have reached the maximum number of concurrent sessions. '
    'Please close some sessions and try again."}'
)
MACHINE_NOT_FOUND = '{"detail":"Machine not found"}'
UNPROCESSABLE_MISSING = (
    '{"detail":[{"type":"missing","loc":["body","machine_id"],"msg":"Field required","input":{}}]}'
)
UNPROCESSABLE_ENUM = (
    '{"detail":[{"type":"enum","loc":["body","gpu"],"msg":"Input should be \'CPU\', \'T4\', '
    "'L4', 'A10G', 'L40S', 'A100', 'A100-80GB', 'H100', 'H200' or 'B200'\",\"input\":\"RTX4090\","
    "\"ctx\":{\"expected\":\"'CPU', 'T4', 'L4', 'A10G', 'L40S', 'A100', 'A100-80GB', 'H100', "
    "'H200' or 'B200'\"}}]}"
)
