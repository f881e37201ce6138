"""The console's CSV import: upload, preview (nothing changes), confirm the very file checked."""

from __future__ import annotations

import hashlib
import io
import re
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from seatgate.adapters.flask import console_imports
from seatgate.errors import ImportRejected
from seatgate.imports.pending import PendingImports, Progress
from seatgate.storage.schema import accounts, import_uploads
from tests.web_support import ADMIN, Web

PAGE = "/admin/imports"
GOOD = (
    "login,name,email,active\n"
    "newbie,New Person,newbie@example.com,yes\n"
    "user000,Renamed Zero,,yes\n"
    "user001,,,no\n"
)


def _upload(web: Web, client: FlaskClient, data: bytes, **extra: object) -> tuple[int, str]:
    """Upload ``data``; follow the redirect. (status of the POST, page text)."""
    form = {"csrf_token": web.csrf(client, PAGE), "file": (io.BytesIO(data), "accounts.csv")}
    answer = client.post(PAGE, data={**form, **extra}, content_type="multipart/form-data")
    if answer.status_code != 303:
        return answer.status_code, answer.get_data(as_text=True)
    return 303, client.get(answer.headers["Location"]).get_data(as_text=True)


def _confirm(web: Web, client: FlaskClient, digest: str) -> tuple[int, str]:
    token = web.csrf(client, PAGE)
    answer = client.post(f"{PAGE}/confirm", data={"csrf_token": token, "digest": digest})
    if answer.status_code != 303:
        return answer.status_code, answer.get_data(as_text=True)
    return 303, client.get(answer.headers["Location"]).get_data(as_text=True)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _state(web: Web) -> list[tuple[str, str | None, str, str]]:
    query = select(
        accounts.c.login, accounts.c.display_name, accounts.c.status, accounts.c.source
    ).order_by(accounts.c.login)
    return web.core.db.read(lambda conn: [tuple(row) for row in conn.execute(query)])  # type: ignore[misc]


def _figure(html: str, name: str) -> str:
    match = re.search(rf'id="count-{name}">([^<]*)<', html)
    assert match is not None, f"no {name} count"
    return match.group(1)


def _with_holder(web: Web) -> FlaskClient:
    client = web.admin_client()
    web.core.ledger.assign(web.core.accounts.get("user001").id, actor="test")
    return client


def test_preview_shows_counts_changes_and_seat_losers_and_changes_nothing(web: Web) -> None:
    client = _with_holder(web)
    before, events = _state(web), len(web.events())
    status, html = _upload(web, client, GOOD.encode())
    assert status == 303
    assert 'data-state="ready"' in html
    assert [_figure(html, n) for n in ("rows", "created", "updated", "disabled")] == list("3111")
    assert re.search(r'id="import-seat-losers-list"><li>user001</li></ul>', html)
    assert '<tr data-login="newbie"><td>newbie</td><td>new account</td>' in html
    assert f'name="digest" value="{_sha(GOOD.encode())}"' in html
    # Nothing changed: accounts, seats, audit.
    assert _state(web) == before
    assert web.holds("user001")
    assert len(web.events()) == events


def test_confirm_applies_the_checked_file_as_the_admin_and_forgets_it(web: Web) -> None:
    client = _with_holder(web)
    data = GOOD.encode()
    _upload(web, client, data)
    status, html = _confirm(web, client, _sha(data))
    assert status == 303
    assert 'data-state="applied"' in html and "Imported" in html
    assert web.core.accounts.get("newbie").display_name == "New Person"
    assert web.core.accounts.get("user000").display_name == "Renamed Zero"
    assert web.core.accounts.get("user001").status == "disabled"
    assert not web.holds("user001")
    created = web.events("account.created")
    assert [(e.actor, e.subject) for e in created][:1] == [(ADMIN, "newbie")]
    kept = web.core.db.read(lambda conn: conn.execute(select(import_uploads.c.data)).all())
    assert kept == [(None,)]  # the bytes are gone; the outcome stays until it expires
    # Confirming again imports nothing twice.
    again, message = _confirm(web, client, _sha(data))
    assert again == 409 and "not imported twice" in message


def test_bad_rows_are_listed_by_line_and_cannot_be_confirmed(web: Web) -> None:
    client = web.admin_client()
    data = b"login,email\nfresh,not-an-email\nok1,\nOK1,\n\nlast,x@example.com\n"
    before = _state(web)
    status, html = _upload(web, client, data)
    assert status == 303 and 'data-state="rejected"' in html
    assert "2 bad rows; nothing was imported." in html
    assert re.search(r'<tr data-line="2"><td>2</td><td class="wrap">[^<]*email', html)
    assert '<tr data-line="4">' in html and "is the same as `ok1` on line 3" in html
    assert 'id="import-confirm-form"' not in html
    refused, message = _confirm(web, client, _sha(data))
    assert refused == 409 and "has bad rows" in message
    assert _state(web) == before


def test_many_bad_rows_are_paged(web: Web) -> None:
    client = web.admin_client()
    data = ("login,email\n" + "".join(f"bad{i},nope\n" for i in range(250))).encode()
    status, html = _upload(web, client, data)
    assert status == 303
    assert "250 bad rows" in html and "Page 1 of 3" in html
    assert html.count("<tr data-line=") == 100
    last = client.get(f"{PAGE}/{_sha(data)}?page=3")
    text = last.get_data(as_text=True)
    assert text.count("<tr data-line=") == 50 and '<tr data-line="251">' in text


def test_unknown_tampered_or_expired_hash_is_refused(web: Web) -> None:
    client = web.admin_client()
    before = _state(web)
    status, message = _confirm(web, client, "0" * 64)
    assert status == 404 and "No uploaded file has this hash" in message
    assert client.get(f"{PAGE}/{'0' * 64}").status_code == 404
    assert client.get(f"{PAGE}/not-a-hash").status_code == 404
    # The kept bytes changed behind the preview's back: refused, nothing written.
    data = GOOD.encode()
    _upload(web, client, data)
    forged = data.replace(b"newbie", b"forged")
    web.core.db.write(lambda conn: conn.execute(update(import_uploads).values(data=forged)))
    status, html = _confirm(web, client, _sha(data))
    assert status == 303
    assert 'data-state="failed"' in html and "does not match its SHA-256" in html
    assert _state(web) == before
    # Expired: the hash is unknown again.
    other = b"login\nlater\n"
    _upload(web, client, other)
    web.clock.advance(timedelta(minutes=31))
    status, message = _confirm(web, client, _sha(other))
    assert status == 404 and "expired" in message
    assert _state(web) == before


def test_an_import_that_now_fails_shows_why_and_changes_nothing(web: Web) -> None:
    client = _with_holder(web)
    data = GOOD.encode()
    _upload(web, client, data)
    # Since the preview, the directory took over user000.
    web.core.db.write(
        lambda conn: conn.execute(
            update(accounts).where(accounts.c.login == "user000").values(source="ldap")
        )
    )
    before = _state(web)
    status, html = _confirm(web, client, _sha(data))
    assert status == 303
    assert 'data-state="failed"' in html and "Not imported: nothing was changed" in html
    assert '<tr data-line="3">' in html and "belongs to the directory" in html
    assert _state(web) == before and web.holds("user001")


def test_an_import_that_would_do_more_than_its_preview_changes_nothing(web: Web) -> None:
    """The preview freed no seat; since then user001 got one: confirming must not free it."""
    client = web.admin_client()
    data = GOOD.encode()
    status, html = _upload(web, client, data)
    assert status == 303 and 'id="import-no-seat-losers"' in html
    web.core.ledger.assign(web.core.accounts.get("user001").id, actor="test")
    before = _state(web)
    status, html = _confirm(web, client, _sha(data))
    assert status == 303
    assert 'data-state="failed"' in html and "changed since the preview" in html
    assert "0 seat(s) freed; importing now would make 1 new, 1 changed, 1 disabled and free 1" in (
        html
    )
    assert _state(web) == before and web.holds("user001")
    assert [e for e in web.events("account.created") if e.actor == ADMIN] == []


def test_rejected_files_keep_no_bytes_and_expired_files_go_at_the_next_confirmation(
    web: Web,
) -> None:
    client = web.admin_client()
    _upload(web, client, b"login,email\nfresh,not-an-email\n")
    kept = select(import_uploads.c.state, import_uploads.c.data)
    assert web.core.db.read(lambda conn: conn.execute(kept).all()) == [("rejected", None)]
    _upload(web, client, b"login\nlater\n")
    web.clock.advance(timedelta(minutes=20))
    _upload(web, client, b"login\nsooner\n")
    web.clock.advance(timedelta(minutes=15))  # the first two expired, the last not
    status, _message = _confirm(web, client, _sha(b"login\nsooner\n"))
    assert status == 303
    assert web.core.db.read(lambda conn: conn.execute(kept).all()) == [("applied", None)]


def test_csrf_is_required(web: Web) -> None:
    client = web.admin_client()
    upload = {"file": (io.BytesIO(GOOD.encode()), "a.csv")}
    answer = client.post(PAGE, data=upload, content_type="multipart/form-data")
    assert answer.status_code == 400
    assert web.core.pending_imports.find(ADMIN, _sha(GOOD.encode())) is None
    _upload(web, client, GOOD.encode())
    confirm = client.post(f"{PAGE}/confirm", data={"digest": _sha(GOOD.encode())})
    assert confirm.status_code == 400
    assert web.core.pending_imports.find(ADMIN, _sha(GOOD.encode())).state == "ready"  # type: ignore[union-attr]
    assert "newbie" not in [row[0] for row in _state(web)]


def test_only_admins_upload_see_or_confirm(web: Web) -> None:
    assert web.client().get(PAGE).status_code == 302
    client = web.client()
    web.login(client, "user000")
    assert client.get(PAGE).status_code == 403
    form = {"csrf_token": web.csrf(client, "/"), "file": (io.BytesIO(GOOD.encode()), "a.csv")}
    assert client.post(PAGE, data=form, content_type="multipart/form-data").status_code == 403
    assert web.core.db.read(lambda conn: conn.execute(select(import_uploads)).all()) == []
    # An admin's kept file is that admin's: another's hash is unknown to them.
    admin = web.admin_client()
    _upload(web, admin, GOOD.encode())
    assert web.core.pending_imports.find("user000", _sha(GOOD.encode())) is None
    confirm = {"csrf_token": web.csrf(client, "/"), "digest": _sha(GOOD.encode())}
    assert client.post(f"{PAGE}/confirm", data=confirm).status_code == 403


def test_upload_size_is_capped_and_few_are_kept(make_web: Callable[..., Web]) -> None:
    web = make_web(max_body_bytes=8192)
    client = web.admin_client()
    big = b"login\n" + b"".join(b"user%05d\n" % i for i in range(1000))
    status, _ = _upload(web, client, big)
    assert status == 413
    assert web.core.db.read(lambda conn: conn.execute(select(import_uploads)).all()) == []
    with pytest.raises(ImportRejected, match="larger than 100 bytes"):
        web.core.pending_imports.store(ADMIN, b"login\n" + b"x" * 200, max_bytes=100)
    # At most five kept per admin: the oldest goes.
    files = [f"login\nfile{n}\n".encode() for n in range(6)]
    for n, data in enumerate(files):
        web.clock.advance(timedelta(seconds=1))
        assert _upload(web, client, data)[0] == 303, n
    assert client.get(f"{PAGE}/{_sha(files[0])}").status_code == 404
    assert client.get(f"{PAGE}/{_sha(files[1])}").status_code == 200


def test_large_files_run_in_the_background_with_progress(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console_imports, "INLINE_LINES", 10)
    release = threading.Event()
    preview = PendingImports.preview

    def held(self: PendingImports, owner: str, digest: str, told: Progress | None = None) -> bool:
        assert release.wait(10)
        return preview(self, owner, digest, told)

    monkeypatch.setattr(PendingImports, "preview", held)
    client = web.admin_client()
    data = ("login\n" + "".join(f"bulk{i:03d}\n" for i in range(50))).encode()
    status, html = _upload(web, client, data)
    assert status == 303
    assert '<meta http-equiv="refresh" content="2">' in html and "Checking the file" in html
    release.set()
    html = _until(client, _sha(data), "ready")
    assert _figure(html, "created") == "50" and "http-equiv" not in html
    assert _confirm(web, client, _sha(data))[0] == 303
    _until(client, _sha(data), "applied")
    assert web.core.accounts.get("bulk049").source == "csv"


def _until(client: FlaskClient, digest: str, state: str) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        html = client.get(f"{PAGE}/{digest}").get_data(as_text=True)
        if f'data-state="{state}"' in html:
            return html
        time.sleep(0.05)
    raise AssertionError(f"the upload never reached {state}")


def test_a_kept_file_is_claimed_by_one_confirmation_only(web: Web) -> None:
    client = web.admin_client()
    data = GOOD.encode()
    _upload(web, client, data)
    pending = web.core.pending_imports
    assert pending.claim(ADMIN, _sha(data)) is True
    assert pending.claim(ADMIN, _sha(data)) is False  # the second confirmation finds it taken
    status, message = _confirm(web, client, _sha(data))
    assert status == 409 and "not imported twice" in message
    # Nor can the same file, uploaded again meanwhile, be reset under the running import.
    again, page = _upload(web, client, data)
    assert again == 400 and "being imported now" in page
    assert pending.apply(ADMIN, _sha(data)) is True
    assert web.core.accounts.get("newbie").source == "csv"
