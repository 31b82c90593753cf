"""Every command and option of the `auditdesk` CLI is documented in docs/cli.md."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from auditdesk.cli.main import build_parser

DOCS = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text()


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
    assert f"`{name.split()[0]}" in DOCS or f"`auditdesk {name.split()[0]}" in DOCS, f"{name} is undocumented"
    if " " in name:
        assert f"{name}" in DOCS, f"`auditdesk {name}` is undocumented"
    for action in parser._actions:
        for option in action.option_strings:
            if option in ("-h", "--help", "--db"):
                continue  # --db is documented once for all commands
            assert option in DOCS, f"`auditdesk {name} {option}` is undocumented in docs/cli.md"
