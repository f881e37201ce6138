"""``seatgate accounts import-csv``: accounts from a spreadsheet, all or nothing.

Exit 0 when the file was imported (or, with --dry-run, could be); 1 when it
has bad rows -- every one is listed on stderr with its line number, and
nothing is written; 2 for a usage error.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import click

from seatgate.cli.admin import accounts_group, json_option
from seatgate.cli.context import CliState, pass_state
from seatgate.cli.output import say
from seatgate.imports import Change, ImportRejected, ImportReport, RowProblem

EXIT_BAD_ROWS = 1


@accounts_group.command("import-csv")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--dry-run", is_flag=True, help="Show what would change, seats included; change nothing."
)
@click.option(
    "--encoding",
    metavar="NAME",
    help="The file's encoding (utf-8, cp1252, latin-1, ...) instead of detecting it.",
)
@json_option
@pass_state
def import_csv(
    state: CliState, file: Path, dry_run: bool, as_json: bool, encoding: str | None
) -> None:
    """Create and update accounts from the CSV FILE, all or nothing.

    The header row names the columns: login, name, email, admin, active and
    optionally password_hash (an argon2id hash), or usuario, nombre, correo,
    administrador, activo. UTF-8, or Windows-1252 when no UTF-8 is in it
    (a mostly-UTF-8 file with a stray byte is refused: --encoding says which);
    `,` `;` or tab. Existing
    accounts are matched by login and updated; `active` no disables an
    account and frees its seat; accounts not in the file are left alone.
    """
    app = state.app()
    progress = _Progress(enabled=sys.stdout.isatty() and not as_json)
    importer = app.account_importer()
    journal = _Journal() if dry_run else None
    try:
        source = app.csv_file(file, on_progress=progress.update, encoding=encoding)
        size = file.stat().st_size
        # A file of new accounts only, in one pass; any other is checked, then written.
        with progress.stage("trying" if dry_run else "importing", size):
            found = importer.apply_new(source, actor=state.actor, dry_run=dry_run, journal=journal)
        if found is None:
            with progress.stage("checking", size):
                checked = importer.check(source)
            with checked:
                if checked.problem_count:
                    verdict = f"{checked.problem_count} bad row(s) in {file}; nothing was imported"
                    _reject(file, checked.problems(), verdict, dry_run, as_json)
                with progress.stage("trying" if dry_run else "writing", checked.row_count):
                    found = importer.apply(
                        checked,
                        actor=state.actor,
                        dry_run=dry_run,
                        journal=journal,
                        on_progress=progress.update,
                    )
        report = found
    except ImportRejected as exc:
        verdict = f"nothing was imported from {file}"
        _reject(file, [RowProblem(exc.line or 0, exc.reason)], verdict, dry_run, as_json)
    if as_json:
        _emit_json(report, [])
    else:
        _print(file, report, journal)


def _print(file: Path, report: ImportReport, journal: _Journal | None) -> None:
    if journal is not None:
        for line in journal.lines():
            say(line)
    counts = (
        f"created {report.created}, updated {report.updated}, "
        f"disabled {report.disabled}, unchanged {report.unchanged}"
    )
    if report.dry_run:
        say(f"dry run, nothing changed; importing {file} would have: {counts}")
    else:
        say(f"imported {file}: {counts}")
    verb = "would lose" if report.dry_run else "lost"
    if report.seats_freed:
        say(
            f"seats freed: {len(report.seats_freed)} ({verb} their seat: "
            + ", ".join(report.seats_freed)
            + ")"
        )
    else:
        say(f"seats freed: 0 (no seat holder {verb} a seat)")


def _reject(
    file: Path, problems: Iterable[RowProblem], verdict: str, dry_run: bool, as_json: bool
) -> NoReturn:
    """List every bad row on stderr (and in the JSON document), then exit 1."""

    def listed() -> Iterator[RowProblem]:
        for problem in problems:
            where = f"line {problem.line}: " if problem.line else ""
            say(f"{file}: {where}{problem.reason}", err=True)
            yield problem

    if as_json:
        _emit_json(ImportReport(dry_run=dry_run), listed())
    else:
        for _problem in listed():
            pass
    say(f"seatgate: {verdict}", err=True)
    sys.exit(EXIT_BAD_ROWS)


def _emit_json(report: ImportReport, errors: Iterable[RowProblem]) -> None:
    """The summary document; errors are written one by one, however many there are."""
    head = json.dumps(report.as_dict(), indent=2, ensure_ascii=False)
    click.echo(head[: -len("\n}")] + ',\n  "errors": [', nl=False)
    separator = "\n"
    for problem in errors:
        item = json.dumps(
            {"line": problem.line or None, "reason": problem.reason}, ensure_ascii=False
        )
        click.echo(f"{separator}    {item}", nl=False)
        separator = ",\n"
    click.echo("\n  ]\n}" if separator != "\n" else "]\n}")


class _Journal:
    """Dry-run change lines, kept in a temporary file rather than in memory."""

    def __init__(self) -> None:
        # Closed by lines(); when the import fails first, by the garbage collector.
        self._file = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115

    def restart(self) -> None:
        self._file.seek(0)
        self._file.truncate()

    def add(self, change: Change) -> None:
        self._file.write(_describe(change) + "\n")

    def lines(self) -> Iterator[str]:
        self._file.seek(0)
        for line in self._file:
            yield line.rstrip("\n")
        self._file.close()


def _describe(change: Change) -> str:
    if change.kind == "create":
        return f"would create {change.login}"
    fields = ", ".join(f for f in change.fields if f != "active")
    extra = f" (and change {fields})" if fields and change.kind != "update" else ""
    if change.kind == "disable":
        seat = "; it would lose its seat" if change.seat_freed else ""
        return f"would disable {change.login}{extra}{seat}"
    if change.kind == "enable":
        return f"would enable {change.login}{extra}"
    return f"would update {change.login}: {fields}"


class _Progress:
    """A progress bar per pass over the file, on a terminal only."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._advance: Callable[[int], None] | None = None
        self._done = 0

    @contextmanager
    def stage(self, label: str, total: int) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        with click.progressbar(length=max(total, 1), label=label) as bar:
            self._advance, self._done = bar.update, 0
            try:
                yield
            finally:
                self._advance = None

    def update(self, done: int) -> None:
        if self._advance is not None and done > self._done:
            self._advance(done - self._done)
            self._done = done


@accounts_group.command("export-csv")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@pass_state
def export_csv(state: CliState, file: Path, force: bool) -> None:
    """Write every account to FILE (`-` = stdout) in the import format.

    UTF-8 with a BOM and CRLF line ends, as Excel expects; cells a
    spreadsheet would run as a formula (=, +, -, @) get a leading `'`, which
    `import-csv` removes again.
    """
    app = state.app()
    accounts = [item.account for item in app.accounts.list()]
    if str(file) == "-":
        count = app.write_accounts_csv(sys.stdout, accounts)
    else:
        if file.exists() and not force:
            raise click.UsageError(f"{file} exists; pass --force to overwrite it")
        with file.open("w", encoding="utf-8-sig", newline="") as out:
            count = app.write_accounts_csv(out, accounts)
        click.echo(f"wrote {count} accounts to {file}", err=True)
