"""The evidence bundle: one .zip with the report, findings, answers, probe packs and manifest.

Every member is stored under the name the manifest gives it, so
`auditdesk verify REPORT.pdf --evidence BUNDLE.zip` (or the unpacked folder)
checks each one. Written beside the target and renamed when complete.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from auditdesk.core.evidence.manifest import MANIFEST_NAME, PackFile, manifest_bytes
from auditdesk.core.report.atomic import atomic_path

README = """\
AuditDesk evidence bundle
=========================

{pdf}                 the audit report (PDF, digitally signed when it was exported with --sign)
{findings}            the findings the report was made from (JSON)
{answers}             every question and answer of the audit (CSV)
packs/                the probe packs the audit used
auditdesk-manifest.json   SHA-256 of each file above, the models and the settings fingerprint;
                          the same manifest is attached to the PDF and printed in its Appendix B

To check everything:   auditdesk verify {pdf} --evidence THIS-FOLDER-OR-ZIP
"""


def write_bundle(target: Path, *, pdf: Path, findings: Path, answers: Path, packs: list[PackFile],
                 manifest: dict) -> Path:
    """Write the evidence bundle `target` (.zip) atomically."""
    names = {f.get("role"): f.get("name") for f in manifest.get("files") or []}
    with atomic_path(target) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.write(pdf, pdf.name)
            zf.write(findings, names.get("findings") or findings.name)
            zf.write(answers, names.get("answers") or answers.name)
            for pack in packs:
                if pack.path is not None:
                    zf.write(pack.path, pack.bundle_name)
            zf.writestr(MANIFEST_NAME, manifest_bytes(manifest))
            zf.writestr("README.txt", README.format(pdf=pdf.name, findings=names.get("findings") or findings.name,
                                                    answers=names.get("answers") or answers.name))
    return target
