"""Homoglyph logins: a new login that mixes scripts confusably (Unicode TR39) is refused.

``admin`` spelt with a Cyrillic ``a`` (U+0430) looks exactly like ``admin``
on an admin page or in the audit log. New local and imported logins like it
are refused with the characters and scripts named; logins a directory
brings are accepted (the directory owns them) but flagged in the sync report
and audited; accounts that exist keep working.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from seatgate.accounts import service as account_service
from seatgate.accounts.logins import confusable_mix
from seatgate.adapters.csv import CsvAccountFile
from seatgate.app import Core
from seatgate.cli.main import cli
from seatgate.cli.sync import _print
from seatgate.errors import InvalidLogin
from seatgate.imports import AccountImporter
from seatgate.licensing.vendor import VendorKey
from seatgate.storage.schema import audit_events
from tests.test_cli import check, write_config
from tests.test_directory_sync import FakeDirectory, make_sync, person

CYRILLIC_ADMIN = "\u0430dmin"  # the first letter is CYRILLIC SMALL LETTER A
GREEK_ALASKA = "\u0391laska"  # the first letter is GREEK CAPITAL LETTER ALPHA
PASSWORD = "a long enough password"


@pytest.fixture
def licensed(app: Core, mint: Callable[..., str]) -> Core:
    app.licensing.install(mint("license", seats=25), actor="test")
    return app


@pytest.mark.parametrize(
    ("login", "words"),
    [
        (CYRILLIC_ADMIN, ("U+0430 CYRILLIC SMALL LETTER A", "Cyrillic", "Latin `a`")),
        ("j\u043ehn", ("U+043E CYRILLIC SMALL LETTER O", "Latin `o`")),
        (GREEK_ALASKA, ("U+03B1 GREEK SMALL LETTER ALPHA", "Greek", "Latin `a`")),
    ],
)
def test_new_local_login_with_a_homoglyph_from_another_script_is_refused(
    app: Core, login: str, words: tuple[str, ...]
) -> None:
    with pytest.raises(InvalidLogin) as caught:
        app.accounts.add(login, password=PASSWORD, actor="test")
    message = str(caught.value)
    assert "mixes scripts that look alike (" in message
    for word in words:
        assert word in message, message
    assert app.accounts.find(login) is None


@pytest.mark.parametrize(
    "login",
    [
        "admin",
        "Zo\u00eb",
        "p.garc\u00eda",
        "\u0438\u0432\u0430\u043d",
        "\u03ba\u03ce\u03c3\u03c4\u03b1\u03c2",
        "\u5c71\u7530\u305f\u308d\u3046",
        "tanaka\u3055\u3093",
        "\u7530\u4e2d\u30bf\u30ed\u30a6",
        "gr33n-2",
    ],
)
def test_single_script_and_japanese_logins_are_accepted(app: Core, login: str) -> None:
    assert confusable_mix(login) is None
    app.accounts.add(login, password=PASSWORD, actor="test")
    assert app.accounts.get(login).login == login


def test_cli_accounts_add_refuses_the_cyrillic_admin_naming_the_letter(
    tmp_path: Path, vendor_key: VendorKey
) -> None:
    config = write_config(tmp_path / "site" / "seatgate.yaml", vendor_key)
    runner = CliRunner()
    check(runner.invoke(cli, ["--config", str(config), "init"]))
    result = check(
        runner.invoke(
            cli,
            ["--config", str(config), "accounts", "add", CYRILLIC_ADMIN, "--password-stdin"],
            input=PASSWORD + "\n",
        )
    )
    assert result.exit_code == 1
    assert "U+0430 CYRILLIC SMALL LETTER A" in result.stderr


def test_existing_confusable_login_keeps_working(
    licensed: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An account made before the check (or by another path) can still log in."""
    with monkeypatch.context() as patched:
        patched.setattr(account_service, "check_new_login", lambda login: None)
        licensed.accounts.add(CYRILLIC_ADMIN, password=PASSWORD, actor="test")
    assert licensed.gate.decide(CYRILLIC_ADMIN, PASSWORD).allowed


def csv_problems(app: Core, path: Path) -> list[tuple[int, str]]:
    importer = AccountImporter(app.db, app.clock, app.ledger)
    with importer.check(CsvAccountFile(path)) as checked:
        return [(p.line, p.reason) for p in checked.problems()]


def test_csv_row_creating_a_confusable_login_is_a_bad_row(app: Core, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(f"login,name\nana,Ana\n{CYRILLIC_ADMIN},Admin\n", encoding="utf-8")
    [(line, reason)] = csv_problems(app, path)
    assert line == 3
    assert "U+0430 CYRILLIC SMALL LETTER A" in reason
    assert "use letters of one script" in reason


def test_csv_row_updating_an_existing_confusable_account_is_accepted(
    app: Core, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patched:
        patched.setattr(account_service, "check_new_login", lambda login: None)
        app.accounts.add(CYRILLIC_ADMIN, password=PASSWORD, actor="test")
    path = tmp_path / "people.csv"
    path.write_text(f"login,name\n{CYRILLIC_ADMIN},Renamed\n", encoding="utf-8")
    assert csv_problems(app, path) == []


def test_directory_login_with_a_homoglyph_is_synced_but_flagged_and_audited(
    licensed: Core, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = FakeDirectory([person(1), person(2, login=CYRILLIC_ADMIN)])
    report = make_sync(licensed).run(directory, full=True)
    assert len(report.created) == 2
    assert licensed.accounts.get(CYRILLIC_ADMIN).source == "ldap"
    [flagged] = report.flagged
    assert flagged["login"] == CYRILLIC_ADMIN
    assert "U+0430" in flagged["reason"]
    assert report.as_dict()["flagged"] == [flagged]
    events = licensed.db.read(
        lambda c: (
            c.execute(
                select(audit_events.c.subject).where(audit_events.c.action == "account.flagged")
            )
            .scalars()
            .all()
        )
    )
    assert events == [CYRILLIC_ADMIN]
    _print(report)
    assert f"flagged: {CYRILLIC_ADMIN} (" in capsys.readouterr().out


def test_directory_rename_to_a_homoglyph_login_is_flagged(licensed: Core) -> None:
    directory = FakeDirectory([person(1)])
    sync = make_sync(licensed)
    assert sync.run(directory, full=True).flagged == []
    directory.put(person(1, login=GREEK_ALASKA))
    report = sync.run(directory, full=True)
    assert [f["login"] for f in report.flagged] == [GREEK_ALASKA]
