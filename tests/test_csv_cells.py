"""The cells of an import file: the inline checks of the usual header give what the parsers give.

The record of a row of the usual header (login, name, email, admin, active) is
made with each cell's common case checked inline; anything else goes to the
cell's parser. These properties hold the two to the same answers.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seatgate.accounts.service import validate_email
from seatgate.adapters.csv_cells import PARSERS, _any_maker, plain_email, row_maker
from seatgate.errors import AccountError
from seatgate.imports import AccountRecord

USUAL = ["email", "login", None, "active", "name", "admin"]
TEXT = st.text(max_size=12)
LOGINS = ["Ana", " BOB ", "ñu", "x" * 257, "", "a\x00b", "\uff21\uff22"]
LOGIN = st.one_of(TEXT, st.sampled_from(LOGINS))
NAME = st.one_of(TEXT, st.sampled_from(["Ana  Pérez", " x\ny ", "", "n" * 257, "a\x07"]))
EMAIL = st.one_of(
    TEXT,
    st.sampled_from(["", "a@b.c", "a@@b.c", "@b.c", " a@b.c ", "a@b", "A@B.ES", "a@b.c\n"]),
    st.builds(
        lambda local, domain: f"{local}@{domain}",
        st.text(max_size=6),
        st.text(alphabet="ab. \t@\u00e9", max_size=6),
    ),
    st.builds(lambda local: f"{local}@example.com", st.text(alphabet="x", max_size=330)),
)
WORD = st.one_of(TEXT, st.sampled_from(["yes", "no", "Sí", " NO ", "", "maybe", "1", "TRUE"]))
# The usual columns in an unusual order, and an ignored one, as USUAL says.
ROW = st.builds(
    lambda login, name, email, admin, active: [email, login, "ignored", active, name, admin],
    LOGIN,
    NAME,
    EMAIL,
    WORD,
    WORD,
)


def outcome(make: object, cells: list[str]) -> AccountRecord | str:
    assert callable(make)
    try:
        record = make(7, cells)
    except AccountError as exc:
        return f"refused: {exc}"
    assert isinstance(record, AccountRecord)
    return record


@given(ROW)
def test_the_usual_header_gives_the_records_every_parser_gives(cells: list[str]) -> None:
    where = {column: index for index, column in enumerate(USUAL) if column}
    assert outcome(row_maker(USUAL), cells) == outcome(_any_maker(where), cells)


@given(EMAIL)
def test_a_plain_email_is_one_validate_email_keeps_as_it_is(value: str) -> None:
    if plain_email(value):
        assert validate_email(value) == value


@pytest.mark.parametrize(
    "value", ["ana@example.com", "a.b+c@mail.example.org", "x@y.z", "u1@example.com"]
)
def test_common_addresses_are_plain(value: str) -> None:
    assert plain_email(value)


@pytest.mark.parametrize(
    "value", ["", " ana@example.com", "ana@example", "ana@.com", "ana@com.", "a@b@c.d", "añ@x.es"]
)
def test_anything_unusual_goes_to_validate_email(value: str) -> None:
    assert not plain_email(value)


def test_another_header_takes_every_cell_through_its_parser() -> None:
    make = row_maker(["login", "active"])
    assert make(3, [" Ana ", "no"]) == AccountRecord(3, "Ana", "ana", active=False)
    with pytest.raises(AccountError):
        make(3, ["ana", "perhaps"])
    assert set(PARSERS) == {"login", "name", "email", "admin", "active", "password_hash"}
