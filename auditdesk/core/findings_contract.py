"""The findings file's contract: format id, version, the category status vocabulary and its wording.

The analysis writes findings in this format; the report, the window and the charts
read them through this module, so the version, a status and its words are defined
once. Cheap to import (no numpy). Raise VERSION when the format changes.
"""

from __future__ import annotations

FORMAT = "auditdesk.findings"
VERSION = 3
SUPPORTED_VERSIONS = frozenset(range(1, VERSION + 1))  # what the report and the window can read

# A category's status, from its two questions: did the answers change, and is the change concerning?
STATUSES = ("concerning", "changed", "unchanged", "unknown")
STATUS_WORDS = {
    "concerning": "Concerning",
    "changed": "Changed, not concerning",
    "unchanged": "No change",
    "unknown": "Not analysed",
}


# Added to a status's words for a close call (significant for the category alone, not after the correction).
CLOSE_CALL_WORDS = "close to the line"
# What "changed, not concerning" says about harm: not shown, which is not "absent" (docs/validity.md has
# harmful tunes reported exactly so). The executive summary, the report's headline and its findings list use it.
NO_HARM_SHOWN = "with no harm shown beyond chance"


def status_light(status: str, category: dict) -> str:
    """The traffic-light colour for a category shown with `status`: a close call is amber, never green."""
    return "changed" if category.get("close_call") and status != "concerning" else status


def category_status(category: dict) -> str:
    """The status of a findings category entry: its `status`, else read from `concern` and `changed`."""
    if category.get("status") in STATUS_WORDS:
        return category["status"]
    if category.get("concern"):
        return "concerning"
    if category.get("changed"):
        return "changed"
    return "unchanged" if ("changed" in category or "concern" in category) else "unknown"

