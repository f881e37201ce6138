"""Terminal escapes in stored text never reach the administrator's terminal.

A login sent to the gate, a browser's user agent or an account's name can
carry ANSI/OSC escape sequences, C1 controls or bidirectional overrides.
The CLI's text output shows them escaped (``\\x1b``, ``\\u202e``); its JSON
output keeps them exactly. The CLI runs with ``color=True``, as on a
terminal: click would otherwise strip some CSI sequences itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from seatgate.app import Core
from seatgate.cli.main import cli
from seatgate.cli.output import safe
from seatgate.config import load_config
from seatgate.licensing.vendor import VendorKey
from tests.test_cli import TESTER, check, write_config

# Clear screen, set the window title (OSC), a C1 CSI, a right-to-left override,
# an isolate and a directional mark.
HOSTILE_LOGIN = "\x1b[2J\x1b]0;owned\x07admin\x9b31m\u202egnp.exe\u2066x\u200f"
HOSTILE_NAME = "Mallory \x9b2J\u202eelif\u2069 \x7f\u061c"
HOSTILE_AGENT = "Mozilla \x1b]8;;http://evil/\x1b\\link\x1b]8;;\x1b\\ \u202e"
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


class Terminal:
    def __init__(self, config: Path) -> None:
        self.config = config
        self.runner = CliRunner()

    def run(self, *args: str) -> str:
        result = check(
            self.runner.invoke(
                cli,
                ["--config", str(self.config), *args],
                env={"LOGNAME": TESTER, "SEATGATE_CONFIG": None},
                color=True,
            )
        )
        assert result.exit_code == 0, (args, result.output)
        return result.stdout


@pytest.fixture
def terminal(tmp_path: Path, vendor_key: VendorKey, mint: Callable[..., str]) -> Iterator[Terminal]:
    """An installation where a hostile login, name and user agent are stored."""
    term = Terminal(write_config(tmp_path / "site" / "seatgate.yaml", vendor_key))
    term.run("init")
    app = Core.build(load_config(term.config))
    try:
        app.licensing.install(mint("license", seats=25, jti="lic-25"), actor="test")
        app.gate.decide(HOSTILE_LOGIN, "wrong password", address="192.0.2.7")
        account = app.accounts.add(
            "mallory", password="a long enough password", actor="test", display_name=HOSTILE_NAME
        )
        app.ledger.assign(account.id, actor="test")
        app.sessions.open(account.id, address="192.0.2.7", user_agent=HOSTILE_AGENT)
    finally:
        app.close()
    yield term


def assert_no_escape_reaches_the_terminal(out: str) -> None:
    bad = UNSAFE.findall(out)
    assert not bad, f"unsafe characters {bad!r} printed in {out!r}"


def test_hostile_login_sent_to_the_gate_is_printed_escaped_by_audit(terminal: Terminal) -> None:
    out = terminal.run("audit")
    assert_no_escape_reaches_the_terminal(out)
    assert "\\x1b[2J\\x1b]0;owned\\x07admin\\x9b31m\\u202egnp.exe" in out


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (("accounts", "list"), "Mallory \\x9b2J\\u202eelif\\u2069 \\x7f\\u061c"),
        (("seats", "list"), "Mallory \\x9b2J\\u202eelif"),
        (("sessions", "list"), "Mozilla \\x1b]8;;http://evil/\\x1b"),
    ],
)
def test_hostile_stored_text_is_printed_escaped_by_every_listing(
    terminal: Terminal, command: tuple[str, ...], shown: str
) -> None:
    out = terminal.run(*command)
    assert_no_escape_reaches_the_terminal(out)
    assert shown in out


def test_json_output_keeps_hostile_stored_text_exactly(terminal: Terminal) -> None:
    events = json.loads(terminal.run("audit", "--json"))
    assert HOSTILE_LOGIN in [e["subject"] for e in events]
    accounts = json.loads(terminal.run("accounts", "list", "--json"))
    assert HOSTILE_NAME in [a["name"] for a in accounts]
    sessions = json.loads(terminal.run("sessions", "list", "--json"))
    assert HOSTILE_AGENT[:40] in [(s["user_agent"] or "")[:40] for s in sessions]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b[31m", "\\x1b[31m"),
        ("a\nb\tc\rd", "a\\x0ab\\x09c\\x0dd"),
        ("\x9b\x85\x7f", "\\x9b\\x85\\x7f"),
        ("\u202a\u202e\u2066\u2069", "\\u202a\\u202e\\u2066\\u2069"),
        ("\u200e\u200f\u061c", "\\u200e\\u200f\\u061c"),
        ("Zoë Ñandú 山田 عربي", "Zoë Ñandú 山田 عربي"),
    ],
)
def test_safe_escapes_controls_c1_and_bidi_and_keeps_letters(text: str, shown: str) -> None:
    assert safe(text) == shown
