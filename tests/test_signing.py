"""Signed, dated, verifiable reports: a real tiny-model audit, a key from `auditdesk keys new`, tampering caught."""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

pypdf = pytest.importorskip("pypdf")
pytest.importorskip("pyhanko")

from auditdesk.cli.main import main  # noqa: E402
from auditdesk.core.evidence.manifest import MANIFEST_NAME, settings_fingerprint  # noqa: E402
from auditdesk.core.evidence.verify import verify_report  # noqa: E402
from test_cli_audit import _audit_args, _cli, _pack  # noqa: E402  (the CLI tests' tiny audit)

PASS_A = "auditor passphrase"
PASS_B = "reviewer passphrase"


def _run(monkeypatch, passphrase: str, *argv: str) -> int:
    monkeypatch.setenv("AUDITDESK_KEY_PASSPHRASE", passphrase)
    try:
        return main(list(argv))
    finally:
        monkeypatch.delenv("AUDITDESK_KEY_PASSPHRASE")


@pytest.fixture(scope="module")
def signed(tiny_model, tiny_lora, tmp_path_factory):
    """A real audit of the tiny pair, exported with --sign and --bundle using a key from `auditdesk keys new`."""
    tmp = tmp_path_factory.mktemp("signed")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUDITDESK_HOME", str(tmp / "home"))
        db = tmp / "audit.db"
        result = _cli(*_audit_args(tiny_model, tiny_lora, _pack(tmp), db))
        assert result.returncode == 0, result.stderr
        run_id = result.stdout.strip().splitlines()[-1]
        assert _run(mp, PASS_A, "keys", "new", "--name", "Ann Auditor", "--org", "Contoso Ltd",
                    "--out", str(tmp / "ann.p12")) == 0
        assert _run(mp, PASS_A, "report", run_id, "--db", str(db), "--pdf", str(tmp / "report.pdf"),
                    "--bundle", str(tmp / "evidence.zip"), "--sign", str(tmp / "ann.p12"),
                    "--signer-role", "Lead auditor", "--organisation", "Contoso Ltd") == 0
    return {"dir": tmp, "db": db, "run": run_id, "pdf": tmp / "report.pdf", "bundle": tmp / "evidence.zip",
            "key": tmp / "ann.p12"}


def _copy(signed, tmp_path, name="report.pdf") -> Path:
    target = tmp_path / name
    shutil.copyfile(signed["pdf"], target)
    return target


def _failures(result) -> str:
    return "\n".join(f"{c.name}: {c.detail}" for c in result.checks if c.passed is False)


def test_signed_report_verifies_with_its_evidence(signed, tmp_path, capsys):
    result = verify_report(signed["pdf"], evidence=signed["bundle"])
    assert result.ok, _failures(result)
    names = [c.name for c in result.checks]
    assert "Signature 'Auditor'" in names and "Unchanged since the last signature" in names
    assert sum(1 for c in result.checks if c.name == "Evidence file" and c.passed) >= 3  # findings, answers, pack
    auditor = next(c for c in result.checks if c.name == "Signature 'Auditor'")
    assert "Ann Auditor (Contoso Ltd)" in auditor.detail and "Lead auditor" in auditor.detail
    # The unpacked bundle is an evidence folder too, and the command line says the same with exit code 0.
    folder = tmp_path / "evidence"
    zipfile.ZipFile(signed["bundle"]).extractall(folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [MANIFEST_NAME, "README.txt", "packs", "report.pdf", f"auditdesk-run-{signed['run']}-findings.json",
         f"auditdesk-run-{signed['run']}-answers.csv"])
    assert main(["verify", str(folder / "report.pdf"), "--evidence", str(folder)]) == 0
    assert "VERIFIED: report.pdf passed every check." in capsys.readouterr().out


def test_report_is_dated_today_and_prints_the_manifest_and_signer(signed):
    reader = pypdf.PdfReader(str(signed["pdf"]))
    created = reader.metadata.creation_date
    assert created.date() == dt.datetime.now(created.tzinfo).date()  # pdfinfo's CreationDate: this export
    text = "".join("\n".join(p.extract_text() for p in reader.pages).split())
    manifest = json.loads(zipfile.ZipFile(signed["bundle"]).read(MANIFEST_NAME))
    findings_sha = next(f["sha256"] for f in manifest["files"] if f["role"] == "findings")
    assert findings_sha in text and manifest["settings_fingerprint"] in text  # Appendix B
    assert "Reportexported" in text and "Auditran" in text  # cover: export date and audit dates
    assert "digitallysignedbyAnnAuditor" in text  # sign-off block
    assert "AppendixC:frameworkmapping" in text and "AnnexIV2(g)" in text and "MEASURE2.11" in text
    assert "notlegaladvice" in text


def test_second_signature_keeps_the_first_valid(signed, tmp_path, monkeypatch, capsys):
    pdf = _copy(signed, tmp_path)
    assert _run(monkeypatch, PASS_B, "keys", "new", "--name", "Rita Reviewer", "--org", "Contoso Ltd",
                "--out", str(tmp_path / "rita.p12")) == 0
    assert _run(monkeypatch, PASS_B, "sign", str(pdf), "--key", str(tmp_path / "rita.p12"),
                "--signer-role", "Head of compliance") == 0
    result = verify_report(pdf, evidence=signed["bundle"])
    assert result.ok, _failures(result)
    signers = [c.detail for c in result.checks if c.name in ("Signature 'Auditor'", "Signature 'Reviewer'")]
    assert len(signers) == 2 and "Ann Auditor" in signers[0] and "Rita Reviewer" in signers[1]
    # Both boxes are now signed: a third signature in a box is refused, and the file is left as it was.
    before = pdf.read_bytes()
    assert _run(monkeypatch, PASS_B, "sign", str(pdf), "--key", str(tmp_path / "rita.p12"), "--as", "reviewer") == 1
    assert "already there" in capsys.readouterr().err and pdf.read_bytes() == before


def test_a_flipped_byte_in_the_signed_range_fails(signed, tmp_path, capsys):
    pdf = _copy(signed, tmp_path)
    data = bytearray(pdf.read_bytes())
    # A byte inside the first compressed stream: the file still parses, but its hash changes.
    start = data.index(b"stream\n", 2000) + 200
    data[start] ^= 0x01
    pdf.write_bytes(bytes(data))
    assert main(["verify", str(pdf)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  Signature 'Auditor': NOT intact" in out and "changed after signing" in out
    assert "NOT VERIFIED" in out


def test_an_unsigned_update_that_changes_a_page_fails(signed, tmp_path):
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    pdf = _copy(signed, tmp_path)
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf.read_bytes()))
    stamp = generic.StreamObject(stream_data=b"BT /F1 24 Tf 100 700 Td (No change detected) Tj ET")
    writer.add_stream_to_page(0, writer.add_object(stamp))
    out = io.BytesIO()
    writer.write(out)
    pdf.write_bytes(out.getvalue())
    result = verify_report(pdf)
    assert not result.ok
    failed = _failures(result)
    assert "Unchanged since the last signature" in failed and "appended after the last signature" in failed
    assert "changed after this signature" in failed  # pyHanko's difference analysis sees the page change


def test_a_swapped_findings_file_fails(signed, tmp_path, capsys):
    folder = tmp_path / "evidence"
    zipfile.ZipFile(signed["bundle"]).extractall(folder)
    findings = folder / f"auditdesk-run-{signed['run']}-findings.json"
    doc = json.loads(findings.read_text(encoding="utf-8"))
    doc["verdict"] = {"text": "No change detected beyond sampling noise", "lines": []}
    findings.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    assert main(["verify", str(folder / "report.pdf"), "--evidence", str(folder)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL  Evidence file: findings file {findings.name} does NOT match the manifest" in out
    assert "changed or swapped" in out


@pytest.mark.skipif(shutil.which("pdfsig") is None, reason="Poppler's pdfsig is not installed (apt install poppler-utils)")
def test_poppler_pdfsig_finds_both_signatures_valid(signed, tmp_path, monkeypatch):
    pdf = _copy(signed, tmp_path)
    assert _run(monkeypatch, PASS_B, "keys", "new", "--name", "Rita Reviewer", "--org", "Contoso Ltd",
                "--out", str(tmp_path / "rita.p12")) == 0
    assert _run(monkeypatch, PASS_B, "sign", str(pdf), "--key", str(tmp_path / "rita.p12")) == 0
    out = subprocess.run(["pdfsig", str(pdf)], capture_output=True, text=True, timeout=60).stdout
    assert out.count("Signature Validation: Signature is Valid.") == 2, out
    assert "Signer Certificate Common Name: Ann Auditor" in out and "Total document signed" in out
    # Self-signed: Poppler trusts nobody vouching for it, which the verify output also says.
    assert "Certificate issuer is unknown" in out or "Certificate Validation: Certificate is Trusted" not in out


def test_wrong_passphrase_writes_nothing(signed, tmp_path, monkeypatch, capsys):
    target = tmp_path / "r.pdf"
    rc = _run(monkeypatch, "not the passphrase", "report", signed["run"], "--db", str(signed["db"]),
              "--pdf", str(target), "--bundle", str(tmp_path / "b.zip"), "--sign", str(signed["key"]))
    assert rc == 1
    assert "passphrase is wrong" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def _certificate_key(tmp_path: Path, *, expired: bool = False, can_sign: bool = True) -> Path:
    """A PKCS#12 file `auditdesk keys new` would never make: expired, or without signing key usage."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Old Key")])
    now = dt.datetime.now(dt.timezone.utc)
    start, end = (now - dt.timedelta(days=400), now - dt.timedelta(days=35)) if expired else (now, now + dt.timedelta(days=30))
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.KeyUsage(digital_signature=can_sign, content_commitment=False, key_encipherment=not can_sign,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    path = tmp_path / ("expired.p12" if expired else "nosign.p12")
    path.write_bytes(pkcs12.serialize_key_and_certificates(
        b"k", key, cert, None, serialization.BestAvailableEncryption(PASS_A.encode())))
    return path


@pytest.mark.parametrize("expired,can_sign,message", [(True, True, "expired on"), (False, False, "not allowed to make signatures")],
                         ids=["expired", "no-signing-key-usage"])
def test_unusable_certificates_are_refused_and_nothing_is_written(signed, tmp_path, monkeypatch, capsys,
                                                                  expired, can_sign, message):
    key = _certificate_key(tmp_path, expired=expired, can_sign=can_sign)
    pdf = _copy(signed, tmp_path)
    before = pdf.read_bytes()
    assert _run(monkeypatch, PASS_A, "sign", str(pdf), "--key", str(key)) == 1
    assert message in capsys.readouterr().err
    assert pdf.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([key.name, pdf.name])


def test_a_pdf_that_is_not_an_auditdesk_report(tmp_path, monkeypatch, capsys):
    from reportlab.pdfgen.canvas import Canvas

    other = tmp_path / "invoice.pdf"
    canvas = Canvas(str(other))
    canvas.drawString(100, 700, "Invoice 42")
    canvas.save()
    assert main(["verify", str(other)]) == 1
    assert "invoice.pdf is not an AuditDesk report" in capsys.readouterr().out
    assert _run(monkeypatch, PASS_A, "keys", "new", "--name", "A", "--org", "B", "--out", str(tmp_path / "k.p12")) == 0
    before = other.read_bytes()
    assert _run(monkeypatch, PASS_A, "sign", str(other), "--key", str(tmp_path / "k.p12")) == 1
    assert "not an AuditDesk report" in capsys.readouterr().err and other.read_bytes() == before


def test_a_truncated_pdf(signed, tmp_path, capsys):
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(signed["pdf"].read_bytes()[:40_000])
    assert main(["verify", str(cut)]) == 1
    assert "incomplete (truncated)" in capsys.readouterr().out


def test_keys_new_refuses_a_short_passphrase_and_never_overwrites(tmp_path, monkeypatch, capsys):
    assert _run(monkeypatch, "short", "keys", "new", "--name", "A", "--org", "B", "--out", str(tmp_path / "k.p12")) == 1
    assert "at least 8 characters" in capsys.readouterr().err and not (tmp_path / "k.p12").exists()
    assert _run(monkeypatch, PASS_A, "keys", "new", "--name", "A", "--org", "B", "--out", str(tmp_path / "k.p12")) == 0
    out = capsys.readouterr().out
    assert "does not prove who that person is" in out and "SHA-256 fingerprint" in out
    assert (tmp_path / "k.p12").stat().st_mode & 0o077 == 0  # the key is private to its owner
    assert _run(monkeypatch, PASS_A, "keys", "new", "--name", "A", "--org", "B", "--out", str(tmp_path / "k.p12")) == 1
    assert "never overwrites a key" in capsys.readouterr().err


def test_an_organisation_can_replace_the_framework_mapping(signed, tmp_path, isolated_home):
    from auditdesk.core.evidence.frameworks import load_mapping, mapping_path
    from auditdesk.core.errors import AuditDeskError

    assert mapping_path().name == "mapping-v1.yaml"
    own = isolated_home / "frameworks" / "mapping.yaml"
    own.parent.mkdir()
    own.write_text(mapping_path().read_text(encoding="utf-8").replace("id: auditdesk-default", "id: contoso-2027"),
                   encoding="utf-8")
    assert load_mapping()["id"] == "contoso-2027"
    bad = tmp_path / "bad.yaml"
    bad.write_text("format: auditdesk.framework-mapping\nid: x\nversion: '1'\ntitle: t\ndisclaimer: d\n"
                   "frameworks:\n  - name: EU AI Act\n    items:\n      - ref: Art. 15\n", encoding="utf-8")
    with pytest.raises(AuditDeskError, match="EU AI Act, item 1: missing title, sections, supports, cannot_cover"):
        load_mapping(bad)


def test_settings_fingerprint_follows_content_not_locations():
    base = dict(models={"base": "a" * 64, "adapter": "b" * 64}, packs=[{"pack_id": "quick", "version": "1", "content_hash": "c"}],
                sampling={"temperature": 0.8}, engine={"n_ctx": 256, "base_model": "/x/base.gguf", "label": "one"},
                prompt_format="plain-qa-v1", tool_version="0.1.0")
    same = settings_fingerprint(**base)
    assert settings_fingerprint(**{**base, "engine": {"n_ctx": 256, "base_model": "/elsewhere.gguf"}}) == same
    for change in ({"sampling": {"temperature": 0.7}}, {"models": {"base": "a" * 64, "adapter": "d" * 64}},
                   {"packs": [{"pack_id": "quick", "version": "2", "content_hash": "c"}]}, {"tool_version": "0.2.0"},
                   {"engine": {"n_ctx": 512}}):
        assert settings_fingerprint(**{**base, **change}) != same


def test_source_date_epoch_fixes_the_creation_date(tmp_path, monkeypatch):
    from auditdesk.core.report.pdf import ReportMeta, build_report
    from report_sample import sample_answers, sample_findings

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")  # 2026-01-01 00:00 UTC
    findings = sample_findings(6)
    for name in ("a.pdf", "b.pdf"):
        build_report(findings, sample_answers(findings, samples=1), tmp_path / name, meta=ReportMeta())
    assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "b.pdf").read_bytes()
    reader = pypdf.PdfReader(str(tmp_path / "a.pdf"))
    assert reader.metadata.creation_date == dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    assert "2026-01-0100:00UTC" in "".join(reader.pages[0].extract_text().split())


@pytest.mark.gui
def test_the_window_signs_and_verifies_a_report(signed, tmp_path, qtbot, monkeypatch):
    pytest.importorskip("pytestqt")
    from PySide6.QtCore import QSettings

    from auditdesk.ui.app import MainWindow

    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    pdf = _copy(signed, tmp_path)
    assert _run(monkeypatch, PASS_B, "keys", "new", "--name", "Rita Reviewer", "--org", "Contoso Ltd",
                "--out", str(tmp_path / "rita.p12")) == 0
    win = MainWindow(tmp_path / "audit.db")
    qtbot.addWidget(win)
    page = win.pages["report"]
    page._exported([str(pdf)])  # as after an export
    page.sign_button.click()
    dialog = page.sign_dialog
    dialog.key_edit.setText(str(tmp_path / "rita.p12"))
    dialog.passphrase_edit.setText(PASS_B)
    dialog.role_edit.setText("Head of compliance")
    dialog.accept()
    qtbot.waitUntil(lambda: page.status.text().startswith("Signed:"), timeout=60_000)
    assert dialog.passphrase_edit.text() == ""  # handed over, not kept
    win.verify_action.trigger()  # File → Verify a report…
    verify = win.verify_dialog
    verify.pdf_edit.setText(str(pdf))
    verify.evidence_edit.setText(str(signed["bundle"]))
    verify.verify_button.click()
    qtbot.waitUntil(lambda: verify.result is not None, timeout=60_000)
    assert verify.result.ok and verify.checks.topLevelItemCount() == len(verify.result.checks)
    assert any("Rita Reviewer" in c.detail for c in verify.result.checks)
    assert verify.summary.text().startswith("VERIFIED")
    verify.close()
    win.close()


def test_a_fixed_source_date_epoch_gives_the_same_unsigned_report_bytes(signed, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    for name in ("a.pdf", "b.pdf"):
        assert main(["report", signed["run"], "--db", str(signed["db"]), "--pdf", str(tmp_path / name)]) == 0
    assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "b.pdf").read_bytes()
    assert pypdf.PdfReader(str(tmp_path / "a.pdf")).metadata.modification_date == dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
