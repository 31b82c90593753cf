"""--fail-on and --junit for CI: exit codes and JUnit XML from real audits of the tiny model."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from lxml import etree

from auditdesk.cli.main import main
from open_pack import write_pack

# The layout CI systems read (Jenkins' and Ant's JUnit reports): written here, checked with lxml.
JUNIT_XSD = """\
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" elementFormDefault="qualified">
  <xs:complexType name="detail">
    <xs:simpleContent><xs:extension base="xs:string">
      <xs:attribute name="message" type="xs:string" use="required"/>
      <xs:attribute name="type" type="xs:string"/>
    </xs:extension></xs:simpleContent>
  </xs:complexType>
  <xs:element name="testsuites">
    <xs:complexType>
      <xs:sequence><xs:element ref="testsuite" maxOccurs="unbounded"/></xs:sequence>
      <xs:attribute name="name" type="xs:string"/>
      <xs:attribute name="tests" type="xs:nonNegativeInteger"/>
      <xs:attribute name="failures" type="xs:nonNegativeInteger"/>
      <xs:attribute name="errors" type="xs:nonNegativeInteger"/>
      <xs:attribute name="time" type="xs:decimal"/>
    </xs:complexType>
  </xs:element>
  <xs:element name="testsuite">
    <xs:complexType>
      <xs:sequence>
        <xs:element name="properties" minOccurs="0">
          <xs:complexType><xs:sequence>
            <xs:element name="property" minOccurs="0" maxOccurs="unbounded">
              <xs:complexType>
                <xs:attribute name="name" type="xs:string" use="required"/>
                <xs:attribute name="value" type="xs:string" use="required"/>
              </xs:complexType>
            </xs:element>
          </xs:sequence></xs:complexType>
        </xs:element>
        <xs:element name="testcase" minOccurs="0" maxOccurs="unbounded">
          <xs:complexType>
            <xs:sequence>
              <xs:choice minOccurs="0" maxOccurs="unbounded">
                <xs:element name="failure" type="detail"/>
                <xs:element name="error" type="detail"/>
                <xs:element name="skipped"/>
              </xs:choice>
              <xs:element name="system-out" type="xs:string" minOccurs="0"/>
              <xs:element name="system-err" type="xs:string" minOccurs="0"/>
            </xs:sequence>
            <xs:attribute name="name" type="xs:string" use="required"/>
            <xs:attribute name="classname" type="xs:string" use="required"/>
            <xs:attribute name="time" type="xs:decimal" use="required"/>
          </xs:complexType>
        </xs:element>
      </xs:sequence>
      <xs:attribute name="name" type="xs:string" use="required"/>
      <xs:attribute name="tests" type="xs:nonNegativeInteger" use="required"/>
      <xs:attribute name="failures" type="xs:nonNegativeInteger" use="required"/>
      <xs:attribute name="errors" type="xs:nonNegativeInteger" use="required"/>
      <xs:attribute name="skipped" type="xs:nonNegativeInteger"/>
      <xs:attribute name="time" type="xs:decimal" use="required"/>
      <xs:attribute name="timestamp" type="xs:dateTime"/>
      <xs:attribute name="hostname" type="xs:string"/>
    </xs:complexType>
  </xs:element>
</xs:schema>
"""


def _pack(tmp_path):
    return write_pack(tmp_path, "ci-test", "CI test pack")


def _audit(tmp_path, base, *model, extra=()):
    return main(["audit", "--base", str(base), *model, "--pack", str(_pack(tmp_path)), "--samples", "4",
                 "--max-tokens", "10", "--seed", "1", "--threads", "2", "--n-ctx", "256",
                 "--backend", "llama-inproc", "--db", str(tmp_path / "ci.db"), "--quiet", *extra])


def _validate(path):
    schema = etree.XMLSchema(etree.fromstring(JUNIT_XSD.encode()))
    document = etree.parse(str(path))
    schema.assertValid(document)
    return ET.parse(path).getroot()


@pytest.fixture(scope="module")
def tuned_audit(tmp_path_factory, tiny_model, tiny_lora):
    """The tiny base against its tiny adapter, audited with --fail-on changed and --junit."""
    tmp = tmp_path_factory.mktemp("ci")
    junit = tmp / "junit.xml"
    code = _audit(tmp, tiny_model, "--lora", str(tiny_lora), extra=("--fail-on", "changed", "--junit", str(junit)))
    return code, junit, tmp


def test_fail_on_changed_exits_3_and_junit_marks_the_changed_categories(tuned_audit):
    from auditdesk.core.store import open_store

    code, junit, tmp = tuned_audit
    with open_store(tmp / "ci.db", read_only=True) as store:
        findings = store.latest_analysis(1)["findings"]
    changed = [row["category"] for row in findings["categories"] if row["changed"] or row["concern"]]
    assert changed, "the random adapter changes the tiny model's answers"
    assert code == 3
    root = _validate(junit)
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert sorted(c.get("name") for c in cases) == ["customer-service", "misalignment"]
    assert all(c.get("classname") == "auditdesk.run1" and float(c.get("time")) == 0 for c in cases)
    failed = {c.get("name"): c.find("failure") for c in cases if c.find("failure") is not None}
    assert sorted(failed) == sorted(changed)
    assert all(f.get("message").startswith(name) and f.text for name, f in failed.items())
    assert suite.get("tests") == root.get("tests") == "2"
    assert suite.get("failures") == str(len(changed)) and suite.get("errors") == "0"
    assert float(suite.get("time")) > 0


def test_fail_on_concerning_follows_the_findings(tuned_audit, tmp_path, capsys):
    """The stored findings decide: --fail-on concerning exits 3 exactly when a category is concerning."""
    from auditdesk.core.report.junit import failing_categories, junit_xml
    from auditdesk.core.store import open_store

    _, _, tmp = tuned_audit
    with open_store(tmp / "ci.db", read_only=True) as store:
        findings = store.latest_analysis(1)["findings"]
    path = tmp_path / "concerning.xml"
    path.write_bytes(junit_xml(findings, fail_on="concerning"))
    root = _validate(path)
    concerning = failing_categories(findings, "concerning")
    assert len(root.findall(".//failure")) == len(concerning)
    assert [row["category"] for row in findings["categories"] if row["concern"]] == concerning


def test_same_model_on_both_sides_passes_the_gate(tmp_path, tiny_model):
    junit = tmp_path / "same.xml"
    code = _audit(tmp_path, tiny_model, "--tuned", str(tiny_model),
                  extra=("--fail-on", "changed", "--junit", str(junit)))
    assert code == 0
    root = _validate(junit)
    assert root.get("failures") == "0" and not root.findall(".//failure")
    assert len(root.findall(".//testcase")) == 2


def test_invalid_fail_on_is_refused(tmp_path, tiny_model, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["audit", "--base", str(tiny_model), "--tuned", str(tiny_model), "--pack", "quick",
              "--fail-on", "different"])
    assert exc.value.code == 2


def test_the_schema_check_can_fail(tmp_path):
    """Negative control: a test case without classname and time is rejected, so the validation is live."""
    bad = tmp_path / "bad.xml"
    bad.write_text('<testsuites><testsuite name="s" tests="1" failures="0" errors="0" time="0">'
                   '<testcase name="only-a-name"/></testsuite></testsuites>')
    with pytest.raises(etree.DocumentInvalid):
        _validate(bad)
