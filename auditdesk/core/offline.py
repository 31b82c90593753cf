"""Keeps every library AuditDesk uses from reaching the network.

Models come from files or from installed packages that carry them; a hub
download at run time is a bug. These switches are set by the code, never left
to the user, and before any library that reads them is imported.
"""

import os

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def enforce_offline() -> None:
    """Set the environment switches that keep Hugging Face libraries offline."""
    for key, value in OFFLINE_ENV.items():
        os.environ[key] = value
