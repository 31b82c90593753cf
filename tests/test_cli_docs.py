"""Every command and option of the `auditdesk` CLI is documented in docs/cli.md, in that command's own section."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from auditdesk.cli.main import build_parser

DOCS = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text()
# "## `auditdesk audit`" ... up to the next "## " heading: one section per top-level command.
SECTIONS = {m.group(1): m.group(2) for m in re.finditer(r"^## `auditdesk (\w+)([^\n]*\n.*?)(?=^## |\Z)", DOCS, re.M | re.S)}


def _setting_options() -> set[str]:
    """Options every audit-running command shares; documented once, in the audit section."""
    from auditdesk.cli.audit import add_setting_options
    from auditdesk.core.audit_job import AuditConfig

    parser = argparse.ArgumentParser()
    add_setting_options(parser, AuditConfig(base_model=""))
    return {o for a in parser._actions for o in a.option_strings} - {"-h", "--help"}


def _commands():
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, command in sub.choices.items():
        nested = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            for child_name, child in nested[0].choices.items():
                yield f"{name} {child_name}", child
        else:
            yield name, command


COMMANDS = list(_commands())


@pytest.mark.parametrize("name,parser", COMMANDS, ids=[name for name, _ in COMMANDS])
def test_command_and_its_options_are_documented(name, parser):
    top = name.split()[0]
    assert top in SECTIONS, f"`auditdesk {top}` has no section in docs/cli.md"
    section = SECTIONS[top]
    if " " in name:
        assert name in section, f"`auditdesk {name}` is undocumented in its section"
    shared = _setting_options()
    for action in parser._actions:
        for option in action.option_strings:
            if option in ("-h", "--help", "--db"):
                continue  # --db is documented once for all commands
            where = SECTIONS["audit"] if option in shared else section
            assert re.search(rf"{re.escape(option)}(?![\w-])", where), \
                f"`auditdesk {name} {option}` is undocumented in its section of docs/cli.md"


def test_a_missing_option_is_caught_in_its_own_section():
    """The check is per section: an option documented only under another command does not count."""
    assert "--keep" in SECTIONS["selftest"] and "--keep" not in SECTIONS["audit"]
