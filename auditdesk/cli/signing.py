"""`auditdesk keys new`, `auditdesk sign` and `auditdesk verify`: signing keys, signatures and their checks.

A thin layer over auditdesk.core.evidence. Passphrases come from
AUDITDESK_KEY_PASSPHRASE, standard input (scripts) or a hidden prompt; they are
never stored, logged or put on the command line.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

PASSPHRASE_ENV = "AUDITDESK_KEY_PASSPHRASE"


def register(subparsers: argparse._SubParsersAction) -> None:
    keys = subparsers.add_parser(
        "keys", help="make a signing key for reports",
        description="Signing keys for AuditDesk reports (PKCS#12 files protected by a passphrase).")
    sub = keys.add_subparsers(dest="keys_command", metavar="ACTION")
    keys.set_defaults(func=lambda args: (keys.print_help(), 0)[1])
    new = sub.add_parser(
        "new", help="make a self-signed signing certificate and key (KEY.p12)",
        description="Make a self-signed document-signing certificate for organisations without a PKI. The "
                    "passphrase is asked for (or read from AUDITDESK_KEY_PASSPHRASE or standard input).")
    new.add_argument("--name", required=True, help="the signer's full name, as it should appear in signatures")
    new.add_argument("--org", required=True, help="the signer's organisation")
    new.add_argument("--email", default="", help="the signer's e-mail address (optional)")
    new.add_argument("--out", required=True, type=Path, metavar="KEY.p12", help="where to write the key file")
    new.add_argument("--days", type=int, default=3 * 365, help="how long the certificate is valid (default: 1095)")
    new.set_defaults(func=keys_new_command)

    sign = subparsers.add_parser(
        "sign", help="add a digital signature (e.g. the reviewer's) to a report",
        description="Add a PAdES signature to an AuditDesk report as an incremental update; earlier signatures "
                    "stay valid. Fills the report's empty Auditor or Reviewer signature box.")
    sign.add_argument("pdf", type=Path, metavar="REPORT.pdf", help="the report to sign")
    sign.add_argument("--key", required=True, type=Path, metavar="KEY.p12", help="the signer's PKCS#12 key file")
    sign.add_argument("--signer-name", default="", help="name shown with the signature (default: from the certificate)")
    sign.add_argument("--signer-role", default="", help="role shown with the signature (default: Reviewer / approver)")
    sign.add_argument("--as", dest="field", choices=["auditor", "reviewer"], default=None,
                      help="which signature box to sign (default: the first empty one)")
    sign.add_argument("--out", type=Path, default=None, metavar="FILE",
                      help="write the signed report here (default: replace REPORT.pdf)")
    sign.set_defaults(func=sign_command)

    verify = subparsers.add_parser(
        "verify", help="check a report's signatures and evidence files",
        description="Check that each signature is intact and covers the document, that nothing was changed "
                    "after signing, and (with --evidence) that every file matches the report's manifest. "
                    "Exit code 0 when every check passes, 1 otherwise.")
    verify.add_argument("pdf", type=Path, metavar="REPORT.pdf", help="the report to check")
    verify.add_argument("--evidence", type=Path, default=None, metavar="DIR",
                        help="folder (or evidence bundle .zip) with the findings, answers and probe packs")
    verify.set_defaults(func=verify_command)


def read_passphrase(prompt: str = "Passphrase: ", *, confirm: bool = False) -> str:
    """The key passphrase: from AUDITDESK_KEY_PASSPHRASE, one line of standard input, or a hidden prompt."""
    from auditdesk.core.errors import AuditDeskError

    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV]
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line:
            raise AuditDeskError(f"no passphrase: give it on standard input or in {PASSPHRASE_ENV}.")
        return line.rstrip("\r\n")
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("The same passphrase again: ") != first:
        raise AuditDeskError("the two passphrases differ; nothing was written.")
    return first


def load_key(path: Path):
    """Ask for the passphrase and open a key file (the passphrase is dropped at once)."""
    from auditdesk.core.evidence.signing import load_signing_key

    return load_signing_key(path, read_passphrase(f"Passphrase for {path.name}: "))


def keys_new_command(args) -> int:
    from auditdesk.core.evidence.signing import SELF_SIGNED_NOTE, new_signing_key

    passphrase = read_passphrase(f"Passphrase to protect {args.out.name}: ", confirm=True)
    key = new_signing_key(args.out, name=args.name, organisation=args.org, passphrase=passphrase,
                          email=args.email, days=args.days)
    print(f"Signing key written to {args.out} (readable by you only).")
    print(f"Certificate: {key.subject}, valid until {key.not_after:%Y-%m-%d}")
    print(f"SHA-256 fingerprint: {key.fingerprint}")
    print()
    print("What this self-signed certificate does and does not prove:")
    print(SELF_SIGNED_NOTE)
    print()
    print("Keep the key file and its passphrase safe: anyone with both can sign in your name. AuditDesk never "
          "stores the passphrase.")
    return 0


def sign_command(args) -> int:
    from auditdesk.core.evidence.signing import AUDITOR_FIELD, REVIEWER_FIELD, sign_report

    key = load_key(args.key)
    field = {"auditor": AUDITOR_FIELD, "reviewer": REVIEWER_FIELD, None: None}[args.field]
    target = sign_report(args.pdf, key, out=args.out, field=field, signer_name=args.signer_name,
                         signer_role=args.signer_role)
    print(f"Signed by {args.signer_name or key.common_name}; written to {target}. Check it with "
          f"`auditdesk verify {target}`.", file=sys.stderr)
    return 0


def verify_command(args) -> int:
    from auditdesk.core.evidence.verify import verify_report

    result = verify_report(args.pdf, evidence=args.evidence)
    print_verification(result)
    return 0 if result.ok else 1


def print_verification(result) -> None:
    for check in result.checks:
        print(f"{check.word}  {check.name}: {check.detail}")
    failed = sum(1 for c in result.checks if c.passed is False)
    print()
    print(f"VERIFIED: {result.path.name} passed every check." if result.ok
          else f"NOT VERIFIED: {failed} check{'s' if failed != 1 else ''} failed for {result.path.name}.")
