"""Checks a signed AuditDesk report: each signature, nothing changed after signing, the evidence files.

The result is a list of plain checks (passed / failed / not checked, one
sentence each) that the command line prints and the window shows as they are.
Nothing here trusts the PDF: names in its manifest are never used as paths
outside the evidence folder, and a damaged file is a failed check, not a crash.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from auditdesk.core.errors import AuditDeskError
from auditdesk.core.evidence.manifest import check_evidence, read_manifest
from auditdesk.core.evidence.signing import SELF_SIGNED_NOTE

# What a later revision may do to an earlier signature's document: add signatures, fill signature fields.
_ALLOWED_AFTER_SIGNING = {"NONE", "LTA_UPDATES", "FORM_FILLING"}


@dataclass
class Check:
    """One verification check: passed True/False, or None when it could not apply (information)."""

    name: str
    passed: bool | None
    detail: str

    @property
    def word(self) -> str:
        return {True: "PASS", False: "FAIL", None: "INFO"}[self.passed]


@dataclass
class Verification:
    """All checks on one report."""

    path: Path
    checks: list[Check] = field(default_factory=list)
    manifest: dict | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.passed is not False for c in self.checks)

    def add(self, name: str, passed: bool | None, detail: str) -> None:
        self.checks.append(Check(name, passed, detail))


def verify_report(pdf: str | Path, *, evidence: str | Path | None = None) -> Verification:
    """Run every check on a report; `evidence` is a folder (or the bundle .zip) holding its files."""
    pdf = Path(pdf)
    result = Verification(path=pdf)
    try:
        data = pdf.read_bytes()
    except OSError as exc:
        result.add("Report file", False, f"cannot read {pdf}: {exc.strerror or exc}")
        return result
    try:
        manifest = read_manifest(data, name=pdf.name)
    except AuditDeskError as exc:
        result.add("AuditDesk report", False, str(exc))
        return result
    result.manifest = manifest
    result.add("AuditDesk report", True, f"report of audit run {manifest.get('run_id')}, exported "
                                         f"{manifest.get('created')}, with its evidence manifest attached")
    _check_signatures(data, result)
    if evidence is not None:
        _check_evidence_files(manifest, Path(evidence), result)
    return result


def _check_signatures(data: bytes, result: Verification) -> None:
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import KeyUsageConstraints, validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        signatures = list(reader.embedded_signatures)
    except (PdfError, ValueError, KeyError) as exc:
        result.add("Signatures", False, f"the signatures cannot be read: the file is damaged ({exc}).")
        return
    if not signatures:
        result.add("Signatures", False, "the report is not digitally signed; anyone could have changed it.")
        return
    usage = KeyUsageConstraints(key_usage={"digital_signature", "non_repudiation"}, match_all_key_usages=False)
    last_end = 0
    self_signed_seen = False
    for sig in signatures:
        label = f"Signature '{sig.field_name}'"
        try:
            # No trust roots and no fetching: offline, the question is integrity and who holds the key.
            context = ValidationContext(trust_roots=[], allow_fetching=False, revocation_mode="soft-fail")
            with _quiet_pyhanko():
                status = validate_pdf_signature(sig, context, key_usage_settings=usage)
        except Exception as exc:  # pyHanko raises many types on malformed signatures; each is a failed check
            result.add(label, False, f"cannot be checked: {exc}")
            continue
        cert = status.signing_cert
        who = _who(cert)
        when = status.signer_reported_dt.strftime("%Y-%m-%d %H:%M:%S %Z") if status.signer_reported_dt else "unknown"
        reason = str(sig.sig_object.get("/Reason", "") or "")
        if status.intact and status.valid:
            result.add(label, True, f"intact; signed by {who} on {when}"
                                    + (f" ({reason})" if reason else "")
                                    + f"; certificate SHA-256 {cert.sha256.hex()}")
        else:
            problem = ("the bytes it covers were changed after signing (their hash no longer matches)"
                       if not status.intact else "the signature value does not match the certificate's key")
            result.add(label, False, f"NOT intact: {problem}. Claimed signer: {who}.")
            continue
        coverage = getattr(status.coverage, "name", str(status.coverage))
        level = getattr(status.modification_level, "name", str(status.modification_level))
        if coverage == "ENTIRE_FILE":
            result.add(f"{label} coverage", True, "covers the whole document")
        elif coverage == "ENTIRE_REVISION" and level in _ALLOWED_AFTER_SIGNING:
            result.add(f"{label} coverage", True, "covers the whole document as it was signed; later revisions only "
                                                  "add signatures")
        else:
            result.add(f"{label} coverage", False,
                       f"the document was changed after this signature (coverage {coverage.lower()}, "
                       f"later change: {level.lower().replace('_', ' ')}); what you see is not what was signed")
        last_end = max(last_end, _signed_end(sig))
        self_signed_seen |= bool(cert.self_signed)
        if cert.self_signed:
            result.add(f"{label} trust", None, f"self-signed certificate: compare its SHA-256 fingerprint "
                                               f"{cert.sha256.hex()[:16]}… with the one the signer gave you.")
    if last_end and last_end < len(data):
        extra = len(data) - last_end
        result.add("Unchanged since the last signature", False,
                   f"{extra:,} bytes were appended after the last signature (an unsigned update); the document "
                   "may show content nobody signed.")
    elif last_end:
        result.add("Unchanged since the last signature", True, "nothing was added after the last signature")
    if self_signed_seen:
        result.add("What a self-signed signature proves", None, SELF_SIGNED_NOTE)


def _who(cert) -> str:
    """'Name (Organisation)' from a certificate subject, falling back to the whole subject."""
    subject = cert.subject.native
    name, org = subject.get("common_name"), subject.get("organization_name")
    if name:
        return f"{name} ({org})" if org else str(name)
    return cert.subject.human_friendly


@contextlib.contextmanager
def _quiet_pyhanko():
    """pyHanko logs every untrusted (self-signed) path with a traceback; the checks say it in words instead."""
    loggers = [logging.getLogger(n) for n in ("pyhanko", "pyhanko_certvalidator")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _signed_end(sig) -> int:
    """The file offset where the bytes covered by this signature end."""
    byte_range = [int(x) for x in sig.sig_object["/ByteRange"]]
    return byte_range[2] + byte_range[3]


def _check_evidence_files(manifest: dict, evidence: Path, result: Verification) -> None:
    if evidence.is_file() and zipfile.is_zipfile(evidence):
        with tempfile.TemporaryDirectory(prefix="auditdesk-verify-") as tmp:
            with zipfile.ZipFile(evidence) as zf:
                for member in zf.infolist():
                    target = (Path(tmp) / member.filename).resolve()
                    if member.is_dir() or not str(target).startswith(str(Path(tmp).resolve())):
                        continue  # never write outside the scratch folder
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(zf.read(member))
            _add_evidence_checks(manifest, Path(tmp), result)
        return
    if not evidence.is_dir():
        result.add("Evidence files", False, f"{evidence} is neither a folder nor an evidence bundle (.zip).")
        return
    _add_evidence_checks(manifest, evidence, result)


def _add_evidence_checks(manifest: dict, folder: Path, result: Verification) -> None:
    for passed, message in check_evidence(manifest, folder):
        result.add("Evidence file", passed, message)
