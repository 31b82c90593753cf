"""JUnit XML of an audit's (or a drift comparison's) findings: one test case per category, for CI systems.

A category fails when it meets the `fail_on` condition ("concerning", or "changed":
changed or concerning). It only formats findings already computed; it never
analyses or reads the database.
"""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

FAIL_ON = ("concerning", "changed")


def category_fails(row: dict, fail_on: str) -> bool:
    """Whether one category row of the findings meets the --fail-on condition."""
    if fail_on not in FAIL_ON:
        raise ValueError(f"fail_on must be one of {FAIL_ON}, not {fail_on!r}")
    if fail_on == "concerning":
        return bool(row.get("concern"))
    return bool(row.get("concern") or row.get("changed"))


def failing_categories(findings: dict, fail_on: str) -> list[str]:
    """The categories of the findings that meet the --fail-on condition."""
    return [row["category"] for row in findings.get("categories", []) if category_fails(row, fail_on)]


def junit_xml(findings: dict, *, fail_on: str = "concerning", suite: str | None = None,
              seconds: float = 0.0) -> bytes:
    """The findings as JUnit XML (testsuites / testsuite / testcase per category, failure when it meets fail_on)."""
    run = findings.get("run") or {}
    run_id = run.get("id", "?")
    name = suite or f"AuditDesk run {run_id}" + (f" ({run['label']})" if run.get("label") else "")
    rows = findings.get("categories", [])
    failures = sum(category_fails(row, fail_on) for row in rows)
    counts = {"tests": str(len(rows)), "failures": str(failures), "errors": "0", "time": f"{seconds:.3f}"}
    root = ET.Element("testsuites", {"name": "auditdesk", **counts})
    suite_el = ET.SubElement(root, "testsuite", {
        "name": name, **counts, "skipped": "0", "hostname": socket.gethostname(),
        "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")})
    properties = ET.SubElement(suite_el, "properties")
    for key, value in (("run_id", run_id), ("fail_on", fail_on),
                       ("settings_fingerprint", run.get("settings_fingerprint", "")),
                       ("findings_version", findings.get("version", ""))):
        ET.SubElement(properties, "property", {"name": key, "value": str(value)})
    classname = f"auditdesk.run{run_id}"
    for row in rows:
        case = ET.SubElement(suite_el, "testcase", {"name": row["category"], "classname": classname, "time": "0"})
        if category_fails(row, fail_on):
            failure = ET.SubElement(case, "failure", {"message": f"{row['category']}: {row['status']}",
                                                      "type": row["status"]})
            failure.text = row.get("summary") or row["status"]
        out = ET.SubElement(case, "system-out")
        out.text = (f"status {row['status']}; changed probes {row.get('changed_probes')} of "
                    f"{row.get('tested_probes')}; change q {row.get('change_q_value')}; "
                    f"concern score {row.get('concern_score')}; concern q {row.get('concern_q_value')}")
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
