"""The export time of a report: now, or `SOURCE_DATE_EPOCH` when a reproducible build asks for a fixed date.

reportlab reads the same variable for the PDF's creation date, so the date
printed in the report and the one in its metadata always agree.
"""

from __future__ import annotations

import datetime as dt
import os


def export_time() -> dt.datetime:
    """When this export happens, timezone-aware (UTC when fixed by SOURCE_DATE_EPOCH)."""
    fixed = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if fixed:
        try:
            return dt.datetime.fromtimestamp(int(fixed), dt.timezone.utc)
        except (ValueError, OverflowError, OSError):
            pass  # reportlab would fail on the same value; an unusable epoch means "now"
    return dt.datetime.now().astimezone()


def reproducible() -> bool:
    """Whether the export date is fixed (and the PDF should be byte-reproducible)."""
    return bool(os.environ.get("SOURCE_DATE_EPOCH", "").strip())


def display(moment: dt.datetime) -> str:
    """A date and time as the report prints it: 2026-11-30 18:34 UTC."""
    return moment.strftime("%Y-%m-%d %H:%M %Z").strip() or moment.isoformat()
