"""CSV import: formats, bad rows, all-or-nothing, seats, idempotence, memory.

The committed corpus in tests/data/ holds small hand-made files as
spreadsheets write them (byte-exact: see tests/data/.gitattributes); the
10,000- and 200,000-row files are generated into tmp_path. Database tests
run on SQLite and PostgreSQL through conftest's `app` fixture.
"""

from __future__ import annotations

import io
import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import event, func, select

from seatgate.accounts.logins import display_login, login_key
from seatgate.adapters.csv import (
    MAX_LINE_CHARS,
    CsvAccountFile,
    neutralise,
    write_accounts_csv,
)
from seatgate.adapters.csv_cells import parse_login as csv_login
from seatgate.app import Core
from seatgate.audit import log as audit
from seatgate.cli.main import cli
from seatgate.errors import AccountError
from seatgate.gate.decision import Reason
from seatgate.imports import (
    AccountImporter,
    AccountRecord,
    Change,
    ImportRejected,
    ImportReport,
    RowProblem,
)
from seatgate.licensing.vendor import VendorKey
from seatgate.records import Account
from seatgate.storage.schema import audit_events
from tests.conftest import FAST_HASH, INSTALLATION, create_pg_database, drop_pg_database

DATA = Path(__file__).parent / "data"
TESTER = "sg-tester"
HEADER = "login,name,email,admin,active\n"


# -- helpers ------------------------------------------------------------------------------


def importer(app: Core) -> AccountImporter:
    return AccountImporter(app.db, app.clock, app.ledger)


def problems_of(app: Core, path: Path) -> list[RowProblem]:
    with importer(app).check(CsvAccountFile(path)) as checked:
        return list(checked.problems())


class Journal:
    def __init__(self) -> None:
        self.changes: list[Change] = []

    def restart(self) -> None:
        self.changes.clear()

    def add(self, change: Change) -> None:
        self.changes.append(change)


def imported(
    app: Core, path: Path, *, dry_run: bool = False, journal: Journal | None = None
) -> ImportReport:
    with importer(app).check(CsvAccountFile(path)) as checked:
        assert list(checked.problems()) == []
        return importer(app).apply(checked, actor="cli:test", dry_run=dry_run, journal=journal)


def account(app: Core, login: str) -> Account:
    return app.accounts.get(login)


def audit_count(app: Core) -> int:
    return app.db.read(
        lambda conn: int(conn.execute(select(func.count()).select_from(audit_events)).scalar_one())
    )


def write_csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def write_config(path: Path, db_url: str, vendor_key: VendorKey) -> Path:
    data = {
        "installation_id": INSTALLATION,
        "database_url": db_url,
        "license": {"public_keys": {vendor_key.kid: vendor_key.public_pem()}},
        "passwords": {
            "argon2_time_cost": FAST_HASH.time_cost,
            "argon2_memory_kib": FAST_HASH.memory_cost_kib,
            "argon2_parallelism": FAST_HASH.parallelism,
        },
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture
def run_cli(app: Core, tmp_path: Path, vendor_key: VendorKey) -> Callable[..., Result]:
    """run_cli("--dry-run", FILE) -> `seatgate accounts import-csv ...` on the app's database."""
    config = write_config(tmp_path / "seatgate.yaml", app.config.database_url, vendor_key)

    def run(*args: str) -> Result:
        result = CliRunner().invoke(
            cli,
            ["--config", str(config), "accounts", "import-csv", *args],
            env={"LOGNAME": TESTER, "SEATGATE_CONFIG": None},
        )
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return run


@pytest.fixture
def licensed(app: Core, mint: Callable[..., str]) -> Core:
    app.licensing.install(mint("license", seats=25), actor="test")
    return app


def generated(path: Path, rows: int, *, bad_line: int | None = None) -> Path:
    """A header and `rows` data rows (line n holds user n); `bad_line` gets a bad email."""
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        for line in range(2, rows + 2):
            email = "not-an-email" if line == bad_line else f"user{line}@example.com"
            out.write(f"user{line:07d},User Número {line},{email},no,yes\r\n")
    return path


# -- the corpus is what it claims to be ---------------------------------------------------


def test_corpus_files_hold_the_bytes_their_tests_are_about() -> None:
    assert (DATA / "accounts_utf8_bom.csv").read_bytes().startswith(b"\xef\xbb\xbflogin,")
    excel = (DATA / "accounts_excel_es.csv").read_bytes()
    assert b"Mu\xf1oz" in excel
    assert b"Pe\xf1a" in excel
    assert b"O\x92Neill" in excel  # a right single quote: Windows-1252, not Latin-1
    with pytest.raises(UnicodeDecodeError):
        excel.decode("utf-8")
    assert b'"Rosa\r\nD\xc3\xadaz"' in (DATA / "accounts_multiline.csv").read_bytes()
    assert b"\t" in (DATA / "accounts_tab.tsv").read_bytes()


# -- encodings and delimiters -------------------------------------------------------------


def test_utf8_file_with_bom_imports_with_its_first_column_recognised(app: Core) -> None:
    report = imported(app, DATA / "accounts_utf8_bom.csv")
    assert (report.created, report.updated, report.unchanged) == (3, 0, 0)
    ana = account(app, "ana.garcia")
    assert ana.login == "ana.garcia"  # no BOM glued to the first login or header
    assert (ana.display_name, ana.email, ana.is_admin, ana.source) == (
        "Ana García",
        "ana.garcia@example.com",
        True,
        "csv",
    )
    assert account(app, "JOSÉ").display_name == "José Núñez"
    luis = account(app, "luis")
    assert luis.email is None
    assert luis.status == "active"  # an empty `active` means yes


def test_windows_1252_semicolon_spanish_excel_file_keeps_munoz_and_pena(app: Core) -> None:
    source = CsvAccountFile(DATA / "accounts_excel_es.csv")
    assert (source.encoding, source.delimiter) == ("cp1252", ";")
    report = imported(app, DATA / "accounts_excel_es.csv")
    assert report.created == 3
    munoz = account(app, "mmunoz")
    assert (munoz.display_name, munoz.email, munoz.is_admin) == (
        "María Muñoz",
        "maria.munoz@example.es",
        True,
    )
    assert account(app, "jpena").display_name == "Jorge Peña"
    assert account(app, "jpena").is_admin is False
    assert account(app, "soneill").display_name == "Siobhán O\u2019Neill"


def test_tab_delimited_file_keeps_commas_and_semicolons_inside_fields(app: Core) -> None:
    assert CsvAccountFile(DATA / "accounts_tab.tsv").delimiter == "\t"
    imported(app, DATA / "accounts_tab.tsv")
    assert account(app, "tomas").display_name == "Tomás, el de sistemas"
    assert account(app, "irene").display_name == "Irene; Ruiz"
    assert account(app, "irene").is_admin is True


def test_crlf_inside_quotes_stays_one_row_and_later_lines_keep_their_numbers(
    app: Core, tmp_path: Path
) -> None:
    imported(app, DATA / "accounts_multiline.csv")
    # A line break typed into a cell becomes a space in the display name.
    assert account(app, "rosa").display_name == "Rosa Díaz"
    assert account(app, "pablo").display_name == 'Pablo "Pablito" Ruiz, Jr.'
    # Rows span lines 2-3 and 4-5, so an appended bad row is on line 6.
    bad = tmp_path / "multiline_bad.csv"
    bad.write_bytes(
        (DATA / "accounts_multiline.csv").read_bytes() + b"elena,Elena,not-an-email,no,yes\r\n"
    )
    assert [p.line for p in problems_of(app, bad)] == [6]


def test_a_file_neither_utf8_nor_windows_1252_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "binary.csv"
    path.write_bytes(b"login,name\r\nok,Fine\r\nbad,\xe9\x81\r\n")  # 0x81: undefined in cp1252
    with pytest.raises(ImportRejected) as caught:
        CsvAccountFile(path)
    assert caught.value.line == 3
    assert "neither UTF-8 nor Windows-1252" in caught.value.reason


STRAY = DATA / "accounts_utf8_stray_cp1252_byte.csv"


def test_utf8_file_with_one_stray_windows_1252_byte_is_refused_not_read_as_mojibake() -> None:
    """Read whole as Windows-1252, every accented name would turn into `ZoÃ«`."""
    assert STRAY.read_bytes().count(b"\x92") == 1
    with pytest.raises(ImportRejected) as caught:
        CsvAccountFile(STRAY)
    assert caught.value.line == 4
    offset = STRAY.read_bytes().index(b"\xe1n O")
    assert f"the byte 0xe1 at offset {offset}" in caught.value.reason
    assert "the rest of the file is UTF-8" in caught.value.reason
    assert "--encoding" in caught.value.reason


def test_stray_byte_past_the_first_megabyte_is_found_at_its_line(tmp_path: Path) -> None:
    rows = "".join(f"user{i:06d},Zoë Núñez {i}\n" for i in range(60_000))
    path = tmp_path / "big.csv"
    path.write_bytes(("login,name\n" + rows).encode() + b"late,O\x92Neill\n")
    assert path.stat().st_size > 1 << 20
    with pytest.raises(ImportRejected) as caught:
        CsvAccountFile(path)
    assert caught.value.line == 60_002
    assert f"the byte 0x92 at offset {path.stat().st_size - 7}" in caught.value.reason


def test_windows_1252_file_with_no_utf8_in_it_is_still_read_as_windows_1252(
    tmp_path: Path,
) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("login,name\r\nzoe,Zoë O\u2019Neill\r\n".encode("cp1252"))
    assert CsvAccountFile(path).encoding == "cp1252"


@pytest.mark.parametrize(
    ("encoding", "name"),
    [("cp1252", "SeÃ¡n O\u2019Neill"), ("latin-1", "SeÃ¡n O'Neill"), ("utf-8", "Seán O'Neill")],
)
def test_encoding_named_by_the_operator_is_used_as_told(
    tmp_path: Path, encoding: str, name: str
) -> None:
    path = tmp_path / "told.csv"
    quote = b"\x92" if encoding == "cp1252" else b"'"
    path.write_bytes(b"login,name\r\nsean,Se\xc3\xa1n O" + quote + b"Neill\r\n")
    [record] = list(CsvAccountFile(path, encoding=encoding).rows())
    assert isinstance(record, AccountRecord)
    assert record.display_name == name


def test_encoding_named_by_the_operator_that_does_not_fit_names_line_and_byte(
    tmp_path: Path,
) -> None:
    with pytest.raises(ImportRejected) as caught:
        CsvAccountFile(STRAY, encoding="utf-8")
    assert caught.value.line == 4
    assert "the byte 0xe1 at offset" in caught.value.reason
    with pytest.raises(ImportRejected, match="unknown encoding `ebcdic`; use one of"):
        CsvAccountFile(STRAY, encoding="ebcdic")


def test_cli_stray_byte_is_refused_then_imported_with_encoding(
    app: Core, run_cli: Callable[..., Result]
) -> None:
    result = run_cli(str(STRAY))
    assert result.exit_code == 1
    assert f"{STRAY}: line 4: the byte 0xe1 at offset" in result.stderr
    assert app.accounts.count() == 0
    result = run_cli("--encoding", "cp1252", str(STRAY))
    assert result.exit_code == 0, result.output
    assert app.accounts.get("oneill").display_name == "Seán O\u2019Neill"


def test_utf16_file_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "u16.csv", "login,name\r\nana,Ana\r\n", encoding="utf-16")
    with pytest.raises(ImportRejected, match="UTF-16"):
        CsvAccountFile(path)


# -- header -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("", "first line must name the columns"),
        ("name,email\n", "no `login`"),
        ("login,name,emial\n", "unknown column `emial`"),
        ("login,email,correo\n", "`email` column appears twice"),
    ],
    ids=["empty file", "no login column", "misspelt column", "column twice"],
)
def test_unusable_header_is_refused_on_line_1(tmp_path: Path, header: str, message: str) -> None:
    path = write_csv(tmp_path / "h.csv", header + "ana,Ana,ana@example.com\n" if header else "")
    with pytest.raises(ImportRejected, match=message) as caught:
        CsvAccountFile(path)
    assert caught.value.line == 1


def test_spanish_headers_in_any_case_and_empty_trailing_columns_are_accepted(
    tmp_path: Path,
) -> None:
    path = write_csv(tmp_path / "h.csv", "USUARIO; Nombre ;Correo;Administrador;ACTIVO;;\n")
    source = CsvAccountFile(path)
    assert source.fields == {"name", "email", "admin", "active"}


def test_columns_absent_from_the_file_are_left_as_they_are(app: Core, tmp_path: Path) -> None:
    app.accounts.add(
        "ana", password="ana-pw", actor="test", display_name="Ana", email="ana@example.com"
    )
    report = imported(app, write_csv(tmp_path / "a.csv", "login,active\nana,no\n"))
    assert report.disabled == 1
    ana = account(app, "ana")
    assert (ana.display_name, ana.email, ana.status) == ("Ana", "ana@example.com", "disabled")
    assert app.hasher.verify(ana.password_hash, "ana-pw")


# -- cells --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("yes", True),
        ("YES", True),
        (" Yes ", True),
        ("true", True),
        ("1", True),
        ("sí", True),
        ("SÍ", True),
        ("si", True),
        ("si\u0301", True),  # "sí" typed with a combining accent (NFD)
        ("no", False),
        ("NO", False),
        ("false", False),
        ("0", False),
        ("", False),  # empty admin: not an admin
    ],
)
def test_boolean_spellings(tmp_path: Path, cell: str, expected: bool) -> None:
    path = write_csv(tmp_path / "b.csv", f"login,admin\nana,{cell}\n")
    [record] = CsvAccountFile(path).rows()
    assert isinstance(record, AccountRecord)
    assert record.is_admin is expected


@pytest.mark.parametrize("cell", ["maybe", "y", "2", "verdadero", "oui"])
def test_other_boolean_words_are_bad_rows(tmp_path: Path, cell: str) -> None:
    path = write_csv(tmp_path / "b.csv", f"login,active\nana,{cell}\n")
    [problem] = CsvAccountFile(path).rows()
    assert problem == RowProblem(2, f"active is `{cell}`; write yes/no, true/false, 1/0 or sí/no")


def test_formula_cells_are_stored_as_text(app: Core) -> None:
    report = imported(app, DATA / "accounts_formulas.csv")
    assert report.created == 4
    cmd = account(app, "=cmd")
    assert cmd.login == "=cmd"
    assert cmd.display_name == '=HYPERLINK("http://evil.example/","click")'
    assert cmd.email == "=calc@example.com"
    assert account(app, "+bob").display_name == "+34 600 000 000"
    assert account(app, "-carol").display_name == "-2+3"
    assert account(app, "@dave").display_name == "@SUM(A1:A2)"


def test_export_neutralises_formula_cells_and_reimports_unchanged(
    app: Core, tmp_path: Path
) -> None:
    imported(app, DATA / "accounts_formulas.csv")
    app.accounts.add("'=quoted", password="pw-quoted", actor="test", display_name="'@x")
    out = io.StringIO(newline="")
    written = write_accounts_csv(out, [item.account for item in app.accounts.list()])
    assert written == 5
    text = out.getvalue()
    assert "\r\n" in text
    cells = [cell for line in text.splitlines()[1:] for cell in line.split(",")]
    # Nothing a spreadsheet would evaluate: every formula start is behind a quote.
    assert not [c for c in cells if c.lstrip('"').startswith(("=", "+", "-", "@"))]
    assert "'=cmd" in text
    assert "'+34 600 000 000" in text
    assert "''=quoted" in text  # a leading quote of its own is kept by doubling
    before = audit_count(app)
    report = imported(app, write_csv(tmp_path / "export.csv", text))
    assert (report.created, report.updated, report.unchanged) == (0, 0, 5)
    assert audit_count(app) == before


@pytest.mark.parametrize(
    ("cell", "exported"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@A1", "'@A1"),
        ("\t=1", "'\t=1"),
        ("'=1", "''=1"),
        ("Ana", "Ana"),
        ("'Ana", "'Ana"),
        ("", ""),
    ],
)
def test_neutralise(cell: str, exported: str) -> None:
    assert neutralise(cell) == exported


def test_password_hash_column_lets_the_imported_account_log_in(
    licensed: Core, tmp_path: Path
) -> None:
    app = licensed
    hashed = app.hasher.hash("rosa-secret-1")
    path = write_csv(tmp_path / "p.csv", f'login,password_hash\nrosa,"{hashed}"\nsinclave,\n')
    imported(app, path)
    assert app.gate.decide("rosa", "rosa-secret-1").allowed
    assert not app.gate.decide("rosa", "wrong").allowed
    # An account with no hash exists but cannot log in with any password.
    assert app.gate.decide("sinclave", "").reason is Reason.INVALID_CREDENTIALS


def test_empty_password_hash_keeps_the_existing_password(app: Core, tmp_path: Path) -> None:
    app.accounts.add("ana", password="ana-pw", actor="test")
    report = imported(app, write_csv(tmp_path / "p.csv", "login,name,password_hash\nana,Ana,\n"))
    assert report.updated == 1
    assert app.hasher.verify(account(app, "ana").password_hash, "ana-pw")


# -- bad rows: all or nothing -------------------------------------------------------------


def test_every_bad_row_is_reported_with_line_and_reason_and_nothing_is_written(
    app: Core,
) -> None:
    problems = problems_of(app, DATA / "accounts_bad_rows.csv")
    assert [(p.line, p.reason) for p in problems] == [
        (3, "login is missing"),
        (4, "email `not-an-email` is not an email address"),
        (5, "admin is `maybe`; write yes/no, true/false, 1/0 or sí/no"),
        (6, "name is longer than 256 characters"),
        (7, f"login `{'l' * 59}…` is not usable: it is longer than 256 characters"),
        (8, "password_hash is not an argon2id hash (`$argon2id$...`)"),
        (
            9,
            "7 fields, but the header names 6 (a value containing `,` must be in double "
            "quotes; argon2 hashes contain `,`)",
        ),
    ]
    assert "$2b$" not in " ".join(p.reason for p in problems)  # hashes are never echoed
    assert app.accounts.count() == 0


def test_duplicates_after_normalisation_are_reported_against_the_first(app: Core) -> None:
    problems = problems_of(app, DATA / "accounts_duplicates.csv")
    assert [(p.line, p.reason.split(" (")[0]) for p in problems] == [
        (4, "login `BOB` is the same as `Bob` on line 2"),
        (5, "login `\uff22\uff4f\uff42` is the same as `Bob` on line 2"),
        (6, "login `ALICE` is the same as `alice` on line 3"),
    ]


def test_bad_row_at_line_9999_of_10000_imports_nothing_and_names_the_line(
    app: Core, tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    path = generated(tmp_path / "ten_thousand.csv", 9_999, bad_line=9_999)
    assert sum(1 for _ in path.open("rb")) == 10_000
    result = run_cli(str(path))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{path}: line 9999: email `not-an-email` is not an email address",
        f"seatgate: 1 bad row(s) in {path}; nothing was imported",
    ]
    assert app.accounts.count() == 0
    assert audit_count(app) == 0


def test_unclosed_quote_is_a_bad_row_at_the_line_it_opens(app: Core, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "q.csv", HEADER + 'ana,Ana,,no,yes\nbea,"Bea\nrest,,,,\n')
    assert [p.line for p in problems_of(app, path)] == [3]
    assert "never closed" in problems_of(app, path)[0].reason


def test_overlong_line_stops_the_reading_with_a_bad_row(app: Core, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "long.csv", HEADER + "ana,Ana,,no,yes\n" + "x," * MAX_LINE_CHARS)
    [problem] = problems_of(app, path)
    assert problem.line == 3
    assert f"longer than {MAX_LINE_CHARS} characters" in problem.reason


def test_directory_account_in_the_file_is_a_bad_row(app: Core, tmp_path: Path) -> None:
    app.accounts.add("dirk", password=None, actor="test", source="ldap")
    path = write_csv(tmp_path / "d.csv", HEADER + "ana,Ana,,no,yes\nDIRK,Dirk CSV,,no,no\n")
    [problem] = problems_of(app, path)
    assert problem.line == 3
    assert "belongs to the directory" in problem.reason
    assert app.accounts.count() == 1


def test_directory_account_created_between_check_and_write_rolls_everything_back(
    app: Core, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "d.csv", HEADER + "ana,Ana,,no,yes\ndirk,Dirk,,no,yes\n")
    with importer(app).check(CsvAccountFile(path)) as checked:
        assert checked.problem_count == 0
        app.accounts.add("dirk", password=None, actor="test", source="ldap")
        with pytest.raises(ImportRejected, match="belongs to the directory") as caught:
            importer(app).apply(checked, actor="cli:test")
    assert caught.value.line == 3
    assert app.accounts.find("ana") is None


def test_write_applies_exactly_what_was_checked_even_if_the_file_changes(
    app: Core, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "c.csv", HEADER + "ana,Ana,,no,yes\n")
    with importer(app).check(CsvAccountFile(path)) as checked:
        write_csv(path, HEADER + "ana,Ana,,no,yes\nana,Twice,,no,yes\n")
        report = importer(app).apply(checked, actor="cli:test")
    assert report.created == 1
    assert [a.account.display_name for a in app.accounts.list()] == ["Ana"]


# -- matching, disabling, seats, idempotence ----------------------------------------------


def test_existing_account_is_matched_by_normalised_login_and_updated_in_place(
    app: Core, tmp_path: Path
) -> None:
    app.accounts.add("Ana.Garcia", password="ana-pw", actor="test", display_name="Ana")
    app.accounts.add("zoe", password="zoe-pw", actor="test", display_name="Zoe")
    path = write_csv(
        tmp_path / "u.csv",
        HEADER + "\uff21\uff2e\uff21.garcia ,Ana García,ana@example.com,yes,yes\n",
    )
    report = imported(app, path)
    assert (report.created, report.updated, report.unchanged) == (0, 1, 0)
    ana = account(app, "ana.garcia")
    assert (ana.login, ana.display_name, ana.email, ana.is_admin, ana.source) == (
        "Ana.Garcia",  # the display login and the source stay as they were
        "Ana García",
        "ana@example.com",
        True,
        "local",
    )
    assert account(app, "zoe").display_name == "Zoe"  # absent from the file: left alone
    [event] = app.db.read(lambda conn: audit.recent(conn, action="account.updated"))
    assert event.subject == "Ana.Garcia"
    assert event.actor == "cli:test"
    assert event.details["changed"]["display_name"] == ["Ana", "Ana García"]


def test_active_no_disables_the_account_and_frees_its_seat(licensed: Core, tmp_path: Path) -> None:
    app = licensed
    hashed = app.hasher.hash("bea-secret-1")
    first = HEADER.strip() + ",password_hash\n"
    imported(app, write_csv(tmp_path / "1.csv", first + f'bea,Bea,,no,yes,"{hashed}"\n'))
    assert app.gate.decide("bea", "bea-secret-1").seat_claimed
    assert app.ledger.used() == 1

    report = imported(app, write_csv(tmp_path / "2.csv", first + f'bea,Bea,,no,no,"{hashed}"\n'))
    assert (report.disabled, report.seats_freed) == (1, ["bea"])
    assert app.ledger.used() == 0
    assert account(app, "bea").status == "disabled"
    assert app.gate.decide("bea", "bea-secret-1").reason is Reason.ACCOUNT_DISABLED
    actions = [
        (e.action, e.outcome)
        for e in reversed(app.db.read(lambda conn: audit.recent(conn, subject="bea")))
        if e.action != "login"
    ]
    assert actions[-2:] == [("account.disabled", None), ("seat.released", "account_disabled")]


def test_active_yes_enables_a_disabled_account(app: Core, tmp_path: Path) -> None:
    app.accounts.add("ana", password="ana-pw", actor="test")
    app.accounts.set_status("ana", "disabled", actor="test")
    report = imported(app, write_csv(tmp_path / "e.csv", "login,active\nana,sí\n"))
    assert (report.updated, report.disabled) == (1, 0)
    assert account(app, "ana").status == "active"
    assert app.db.read(lambda conn: audit.recent(conn, action="account.enabled"))


def test_importing_the_same_file_twice_changes_nothing_the_second_time(app: Core) -> None:
    first = imported(app, DATA / "accounts_excel_es.csv")
    events = audit_count(app)
    before = [(a.account, a.has_seat) for a in app.accounts.list()]
    second = imported(app, DATA / "accounts_excel_es.csv")
    assert (first.created, second.created, second.updated, second.disabled) == (3, 0, 0, 0)
    assert second.unchanged == 3
    assert audit_count(app) == events
    assert [(a.account, a.has_seat) for a in app.accounts.list()] == before


def test_dry_run_reports_changes_and_seat_impact_and_writes_nothing(
    licensed: Core, tmp_path: Path
) -> None:
    app = licensed
    app.accounts.add("bea", password="bea-pw", actor="test")
    app.accounts.add("carl", password="carl-pw", actor="test", display_name="Carl")
    assert app.gate.decide("bea", "bea-pw").seat_claimed
    events = audit_count(app)
    path = write_csv(
        tmp_path / "d.csv", HEADER + "bea,,,no,no\ncarl,Carlos,,no,yes\nnew,New,,no,yes\n"
    )
    journal = Journal()
    report = imported(app, path, dry_run=True, journal=journal)
    assert report.as_dict() == {
        "created": 1,
        "updated": 1,
        "disabled": 1,
        "unchanged": 0,
        "seats_freed": ["bea"],
        "dry_run": True,
    }
    assert journal.changes == [
        Change("disable", "bea", ("active",), seat_freed=True),
        Change("update", "carl", ("name",)),
        Change("create", "new"),
    ]
    assert audit_count(app) == events
    assert app.accounts.find("new") is None
    assert account(app, "bea").status == "active"
    assert app.ledger.holds_seat(account(app, "bea").id)


# -- the command --------------------------------------------------------------------------


def test_cli_imports_and_prints_the_summary(app: Core, run_cli: Callable[..., Result]) -> None:
    result = run_cli(str(DATA / "accounts_utf8_bom.csv"))
    assert result.exit_code == 0, result.output
    assert "created 3, updated 0, disabled 0, unchanged 0" in result.stdout
    assert "checking" not in result.output  # no progress bar: stdout is not a terminal
    [event, *_] = app.db.read(lambda conn: audit.recent(conn, action="account.created"))
    assert event.actor == f"cli:{TESTER}"


def test_cli_dry_run_lists_who_would_lose_a_seat(
    licensed: Core, tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    app = licensed
    app.accounts.add("bea", password="bea-pw", actor="test")
    assert app.gate.decide("bea", "bea-pw").seat_claimed
    path = write_csv(tmp_path / "d.csv", HEADER + "bea,,,no,no\nnew,New,,no,yes\n")
    result = run_cli("--dry-run", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "would disable bea; it would lose its seat",
        "would create new",
        f"dry run, nothing changed; importing {path} would have: "
        "created 1, updated 0, disabled 1, unchanged 0",
        "seats freed: 1 (would lose their seat: bea)",
    ]
    assert app.ledger.holds_seat(account(app, "bea").id)


def test_cli_json_summary(app: Core, run_cli: Callable[..., Result]) -> None:
    result = run_cli("--json", str(DATA / "accounts_tab.tsv"))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "created": 2,
        "updated": 0,
        "disabled": 0,
        "unchanged": 0,
        "seats_freed": [],
        "dry_run": False,
        "errors": [],
    }


def test_cli_json_lists_every_bad_row_and_exits_1(
    app: Core, run_cli: Callable[..., Result]
) -> None:
    result = run_cli("--json", str(DATA / "accounts_duplicates.csv"))
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["created"] == 0
    assert [e["line"] for e in document["errors"]] == [4, 5, 6]
    assert len(result.stderr.splitlines()) == 4  # three rows and the verdict
    assert app.accounts.count() == 0


def test_cli_header_error_exits_1(app: Core, tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    path = write_csv(tmp_path / "h.csv", "user,name\nana,Ana\n")
    result = run_cli(str(path))
    assert result.exit_code == 1
    assert "line 1: unknown column `user`" in result.stderr
    assert result.stderr.endswith(f"seatgate: nothing was imported from {path}\n")


def test_cli_missing_file_is_a_usage_error(
    app: Core, tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    assert run_cli(str(tmp_path / "nowhere.csv")).exit_code == 2
    assert run_cli().exit_code == 2


# -- bounded memory -----------------------------------------------------------------------

MEMORY_BOUND = 64 * 1024 * 1024


@pytest.mark.slow
def test_200000_rows_import_with_bounded_memory(
    build_app: Callable[..., Core], sqlite_url: str, tmp_path: Path
) -> None:
    app = build_app(sqlite_url)
    small = generated(tmp_path / "20k.csv", 20_000)
    large = generated(tmp_path / "200k.csv", 200_000)
    peaks: dict[str, int] = {}
    tracemalloc.start()
    try:
        for name, path in (("20k", small), ("200k", large)):
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            report = imported(app, path)
            peaks[name] = tracemalloc.get_traced_memory()[1] - before
            assert report.created == (20_000 if name == "20k" else 180_000)
    finally:
        tracemalloc.stop()
    print(
        f"\ntracemalloc peaks: 20k rows {peaks['20k'] / 2**20:.1f} MiB, "
        f"200k rows {peaks['200k'] / 2**20:.1f} MiB"
    )
    assert app.accounts.count() == 200_000
    assert peaks["200k"] < MEMORY_BOUND
    assert peaks["200k"] < 2 * peaks["20k"]


@pytest.mark.postgres
def test_a_postgresql_import_plans_every_batch_for_its_own_keys(
    build_app: Callable[..., Core], tmp_path: Path
) -> None:
    """Regression: psycopg prepares a statement run five times, and PostgreSQL
    then kept a generic plan from when `accounts` was empty, so each batch
    scanned the whole table (100,000 rows took over 90 s, 200,000 rows 170 s).

    Counted, not timed: each transaction that looks logins up by batch asks
    for custom plans before its first lookup, and the statements grow with
    the batches, never with the rows. 6,000 rows make six batches: the sixth
    lookup is the one psycopg runs prepared.
    """
    url = create_pg_database()
    try:
        app = build_app(url)
        statements: list[str] = []

        def count(*args: Any) -> None:
            statements.append(" ".join(args[2].split()))

        event.listen(app.db.engine, "before_cursor_execute", count)
        report = imported(app, generated(tmp_path / "6k.csv", 6_000))
        event.remove(app.db.engine, "before_cursor_execute", count)
        assert report.created == 6_000
    finally:
        drop_pg_database(url)

    def where(prefix: str) -> list[int]:
        return [i for i, text in enumerate(statements) if text.startswith(prefix)]

    custom_plans = where("SET LOCAL plan_cache_mode = force_custom_plan")
    directory_lookups = where("SELECT accounts.login_key FROM accounts WHERE")  # the check
    existing_lookups = where("SELECT accounts.id, ")  # the apply
    assert len(directory_lookups) == len(existing_lookups) == 6
    assert len(custom_plans) == 2
    assert custom_plans[0] < directory_lookups[0] < directory_lookups[-1] < custom_plans[1]
    assert custom_plans[1] < existing_lookups[0]
    assert len(statements) < 60, statements


def test_export_csv_command_neutralises_formulas_and_round_trips(
    tmp_path: Path, vendor_key: Any
) -> None:
    """`seatgate accounts export-csv` writes what `import-csv` reads back unchanged."""
    from click.testing import CliRunner

    from seatgate.cli.main import cli

    config = tmp_path / "seatgate.yaml"
    config.write_text(
        "installation_id: intranet-a.example.com\n"
        "database_url: sqlite:///seatgate.db\n"
        "passwords: {argon2_time_cost: 1, argon2_memory_kib: 1024, argon2_parallelism: 1}\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    base = ["--config", str(config)]
    assert runner.invoke(cli, [*base, "init"]).exit_code == 0
    source = tmp_path / "in.csv"
    source.write_text(
        'login,name,email\nana,"=HYPERLINK(""http://evil"")",ana@example.com\nbob,@SUM(A1),\n',
        encoding="utf-8",
    )
    assert runner.invoke(cli, [*base, "accounts", "import-csv", str(source)]).exit_code == 0
    out = tmp_path / "out.csv"
    result = runner.invoke(cli, [*base, "accounts", "export-csv", str(out)])
    assert result.exit_code == 0, result.output
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    assert "'=HYPERLINK" in text and "'@SUM(A1)" in text
    assert "\n=" not in text and ",=" not in text and ",@" not in text
    refused = runner.invoke(cli, [*base, "accounts", "export-csv", str(out)])
    assert refused.exit_code == 2 and "--force" in refused.output
    again = runner.invoke(cli, [*base, "accounts", "import-csv", str(out), "--json"])
    assert again.exit_code == 0, again.output
    summary = json.loads(again.output)
    assert (summary["created"], summary["updated"], summary["unchanged"]) == (0, 0, 2)


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=12))
def test_an_ascii_login_cell_gives_the_display_form_and_key_of_the_full_path(cell: str) -> None:
    """ASCII login cells take a shortcut; it gives what display_login and login_key give,
    and a bad cell still fails as the full path does."""
    try:
        expected: object = (display_login(cell), login_key(cell)) if cell.strip() else None
    except AccountError as exc:
        expected = str(exc)
    try:
        got: object = csv_login(cell)
    except AccountError as exc:
        got = None if str(exc) == "login is missing" else str(exc)
    assert got == expected
