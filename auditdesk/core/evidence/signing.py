"""Signing keys and PAdES signatures on AuditDesk reports (pyHanko).

A signature is always added as an incremental update, so a reviewer's later
signature leaves the auditor's intact. Every output is written beside its target
and renamed when complete: a wrong passphrase or a refused certificate never
leaves a half-written file. Passphrases are used and dropped, never stored.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from auditdesk.core.errors import AuditDeskError

# Visible signature fields that every AuditDesk report carries in its sign-off block.
AUDITOR_FIELD = "Auditor"
REVIEWER_FIELD = "Reviewer"
ROLE_DEFAULTS = {AUDITOR_FIELD: "Auditor", REVIEWER_FIELD: "Reviewer / approver"}
MIN_PASSPHRASE = 8

SELF_SIGNED_NOTE = (
    "A self-signed certificate proves that the report has not changed since it was signed with this key, and "
    "that whoever signed it held the key. It does not prove who that person is: nobody but the key holder "
    "vouches for the name in it. Give the certificate's SHA-256 fingerprint to the people who will check your "
    "reports through a channel they trust (in person, on letterhead, in your key register); a certificate from "
    "your organisation's PKI or a qualified trust service proves identity where that is required.")


@dataclass
class SigningKey:
    """A loaded PKCS#12 signing key: the pyHanko signer and facts about its certificate."""

    signer: object
    subject: str
    common_name: str
    organisation: str
    fingerprint: str  # SHA-256 of the certificate, hex
    not_after: dt.datetime
    self_signed: bool


def _write_private(target: Path, data: bytes) -> None:
    """Write a secret file readable by its owner only, atomically; never over an existing file."""
    target = Path(target)
    if target.exists():
        raise AuditDeskError(f"{target} already exists; choose another file name (AuditDesk never overwrites a key).")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def new_signing_key(out: str | Path, *, name: str, organisation: str, passphrase: str, email: str = "",
                    days: int = 3 * 365) -> SigningKey:
    """Make a self-signed document-signing certificate and its key, saved as a passphrase-protected PKCS#12 file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not name.strip() or not organisation.strip():
        raise AuditDeskError("a signing key needs the signer's name (--name) and organisation (--org).")
    if len(passphrase) < MIN_PASSPHRASE:
        raise AuditDeskError(f"the passphrase must be at least {MIN_PASSPHRASE} characters long.")
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, name.strip()),
                  x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation.strip())]
    if email:
        attributes.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, email.strip()))
    subject = x509.Name(attributes)
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION,
                                              x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")]),  # document signing
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    cert = builder.sign(key, hashes.SHA256())
    data = pkcs12.serialize_key_and_certificates(
        name.strip().encode("utf-8"), key, cert, None,
        serialization.BestAvailableEncryption(passphrase.encode("utf-8")))
    _write_private(Path(out), data)
    return load_signing_key(out, passphrase)


def load_signing_key(path: str | Path, passphrase: str, *, at: dt.datetime | None = None) -> SigningKey:
    """Open a PKCS#12 key file and check that its certificate may sign now; a clear error otherwise."""
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID
    from pyhanko.sign.signers import SimpleSigner
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise AuditDeskError(f"the key file {path} does not exist; make one with `auditdesk keys new`.") from None
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, passphrase.encode("utf-8"))
    except ValueError:
        raise AuditDeskError(f"could not open {path.name}: the passphrase is wrong, or the file is not a PKCS#12 "
                             "(.p12/.pfx) key file. Nothing was signed.") from None
    if key is None or cert is None:
        raise AuditDeskError(f"{path.name} holds no private key and certificate to sign with.")
    now = at or dt.datetime.now(dt.timezone.utc)
    common_name = _name_part(cert.subject, NameOID.COMMON_NAME)
    if cert.not_valid_after_utc < now:
        raise AuditDeskError(f"the certificate in {path.name} ({common_name}) expired on "
                             f"{cert.not_valid_after_utc:%Y-%m-%d}; a signature made with it would not be valid. "
                             "Make a new key with `auditdesk keys new`. Nothing was signed.")
    if cert.not_valid_before_utc > now:
        raise AuditDeskError(f"the certificate in {path.name} is valid only from {cert.not_valid_before_utc:%Y-%m-%d}.")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not (usage.digital_signature or usage.content_commitment):
        raise AuditDeskError(f"the certificate in {path.name} ({common_name}) is not allowed to make signatures "
                             "(its key usage has neither digitalSignature nor nonRepudiation). Nothing was signed.")
    der = cert.public_bytes(serialization.Encoding.DER)
    signing_cert = asn1_x509.Certificate.load(der)
    private = asn1_keys.PrivateKeyInfo.load(key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    chain = [asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in extra or []]
    signer = SimpleSigner(signing_cert=signing_cert, signing_key=private,
                          cert_registry=SimpleCertificateStore.from_certs([signing_cert, *chain]))
    return SigningKey(signer=signer, subject=cert.subject.rfc4514_string(), common_name=common_name,
                      organisation=_name_part(cert.subject, NameOID.ORGANIZATION_NAME),
                      fingerprint=signing_cert.sha256.hex(), not_after=cert.not_valid_after_utc,
                      self_signed=cert.issuer == cert.subject)


def _name_part(name, oid) -> str:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else ""


def prepare_report_pdf(src: Path, dst: Path, *, manifest: bytes, manifest_name: str,
                       signature_boxes: dict[str, tuple[int, tuple[float, float, float, float]]]) -> None:
    """Attach the evidence manifest and add the empty sign-off signature fields (before any signature)."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.embed import EmbeddedFileObject, EmbeddedFileParams, FileSpec, embed_file
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign.fields import SigFieldSpec, append_signature_field

    from auditdesk.core.report.dates import reproducible

    with open(src, "rb") as fh:
        original = fh.read()
    writer = _reproducible_writer(original) if reproducible() else IncrementalPdfFileWriter(io.BytesIO(original))
    data = EmbeddedFileObject.from_file_data(writer, manifest, mime_type="application/json",
                                             params=EmbeddedFileParams(embed_size=True))
    embed_file(writer, FileSpec(file_spec_string=manifest_name, file_name=manifest_name, embedded_data=data,
                                description="AuditDesk evidence manifest: SHA-256 of every file this report rests on",
                                af_relationship=generic.pdf_name("/Data")))
    for field_name, (page, box) in signature_boxes.items():
        append_signature_field(writer, SigFieldSpec(sig_field_name=field_name, on_page=page,
                                                    box=tuple(int(round(v)) for v in box)))
    with open(dst, "wb") as out:
        writer.write(out)


def _reproducible_writer(original: bytes):
    """An incremental writer whose update is the same bytes every time (for SOURCE_DATE_EPOCH builds).

    pyHanko stamps the modification date (Info and XMP) with the clock and draws
    the second half of the document ID at random; here both follow the input.
    """
    import dataclasses
    import hashlib

    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    from auditdesk.core.report.dates import export_time

    fixed = export_time()
    writer = IncrementalPdfFileWriter(io.BytesIO(original))
    meta_type = type(writer._meta)

    class FixedClockMetadata(meta_type):
        def __setattr__(self, name, value):
            super().__setattr__(name, fixed if (name == "last_modified" and value == "now") else value)

    writer._meta = FixedClockMetadata(**{f.name: getattr(writer._meta, f.name) for f in dataclasses.fields(meta_type)})
    first = writer._document_id[0]
    writer._document_id = generic.ArrayObject(
        [first, generic.ByteStringObject(hashlib.sha256(original).digest()[:16])])
    return writer


def empty_signature_fields(pdf_bytes: bytes) -> list[str]:
    """Names of the report's signature fields that nobody has signed yet."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.fields import enumerate_sig_fields

    reader = PdfFileReader(io.BytesIO(pdf_bytes))
    return [name for name, value, _ in enumerate_sig_fields(reader, filled_status=False)]


def sign_report_bytes(pdf_bytes: bytes, key: SigningKey, *, field: str | None = None, signer_name: str = "",
                      signer_role: str = "") -> bytes:
    """The report with one more PAdES B-B signature, appended as an incremental update."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.sign import fields, signers
    from pyhanko.stamp import TextStampStyle

    try:
        empty = empty_signature_fields(pdf_bytes)
    except (PdfError, ValueError, KeyError) as exc:
        raise AuditDeskError(f"the PDF cannot be read, so it cannot be signed ({exc}).") from None
    if field is None:
        field = next((f for f in (AUDITOR_FIELD, REVIEWER_FIELD) if f in empty), None) or _next_free_name(pdf_bytes)
    elif field in (AUDITOR_FIELD, REVIEWER_FIELD) and field not in empty:
        raise AuditDeskError(f"the report's {field.lower()} signature is already there; a report has one of each. "
                             "Sign as the other role, or verify the report to see who signed.")
    name = signer_name.strip() or key.common_name
    role = signer_role.strip() or ROLE_DEFAULTS.get(field, "Signer")
    meta = signers.PdfSignatureMetadata(
        field_name=field, md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES,
        name=name, reason=f"{role}: reviewed and approved this AuditDesk audit report",
    )
    style = TextStampStyle(stamp_text="Digitally signed by %(name)s\n%(role)s\n%(ts)s\nCert. SHA-256 %(fp)s",
                           border_width=0, timestamp_format="%Y-%m-%d %H:%M %Z")
    pdf_signer = signers.PdfSigner(meta, key.signer, stamp_style=style)
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf_bytes))
    out = io.BytesIO()
    pdf_signer.sign_pdf(writer, output=out, appearance_text_params={
        "name": name, "role": role, "fp": key.fingerprint[:16] + "…"})
    return out.getvalue()


def _next_free_name(pdf_bytes: bytes) -> str:
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.fields import enumerate_sig_fields

    taken = {name for name, _, _ in enumerate_sig_fields(PdfFileReader(io.BytesIO(pdf_bytes)))}
    n = 2
    while f"Signature{n}" in taken:
        n += 1
    return f"Signature{n}"


def sign_report(src: str | Path, key: SigningKey, *, out: str | Path | None = None, field: str | None = None,
                signer_name: str = "", signer_role: str = "") -> Path:
    """Add a signature to an AuditDesk report; written atomically to `out` (default: over `src`)."""
    from auditdesk.core.evidence.manifest import read_manifest
    from auditdesk.core.report.atomic import atomic_path

    src = Path(src)
    data = src.read_bytes()
    read_manifest(data, name=src.name)  # refuses a PDF that is not an AuditDesk report, or a damaged one
    signed = sign_report_bytes(data, key, field=field, signer_name=signer_name, signer_role=signer_role)
    target = Path(out) if out else src
    with atomic_path(target) as tmp:
        tmp.write_bytes(signed)
    return target


@dataclass
class SigningRequest:
    """Who signs an export: the loaded key, and the name and role to show (default: the certificate's name)."""

    key: SigningKey
    signer_name: str = ""
    signer_role: str = ""
