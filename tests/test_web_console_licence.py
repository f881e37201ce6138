"""The console's licence page: every token, install after a preview, remove after a confirmation."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from tests.web_support import ADMIN, Web

Minter = Callable[..., str]


def _form(web: Web, client: FlaskClient, path: str, **form: str) -> tuple[int, str]:
    token = web.csrf(client, "/admin/licence")
    answer = client.post(path, data={"csrf_token": token, **form})
    if answer.status_code == 303:
        assert answer.headers["Location"] == "/admin/licence"
        return 303, client.get("/admin/licence").get_data(as_text=True)
    return answer.status_code, answer.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/admin/licence"])
def test_users_get_403(web: Web, path: str) -> None:
    client = web.client()
    web.login(client, "user000")
    assert client.get(path).status_code == 403
    token = web.csrf(client, "/")
    answer = client.post("/admin/licence/remove", data={"csrf_token": token, "jti": "x"})
    assert answer.status_code == 403


def test_every_token_is_listed_with_its_period(web: Web, mint: Minter) -> None:
    base = web.core.ledger.state().base_jti
    addon = mint("addon", seats=5, lic=base, purchased_at=web.clock.now(), jti="addon-5")
    web.core.licensing.install(addon, actor="test")
    client = web.admin_client()
    assert 'id="licence-link"' in client.get("/admin").get_data(as_text=True)
    html = client.get("/admin/licence").get_data(as_text=True)
    rows = dict(re.findall(r'<tr data-jti="([^"]+)">(.*?)</tr>', html, re.S))
    assert set(rows) == {base, "addon-5"}
    assert "days left" in rows[base] and "22%" in rows[base]
    # The licence cannot be removed (only replaced); the add-on can.
    assert "remove-token" not in rows[base] and "remove-token" in rows["addon-5"]
    assert re.search(r'id="seats-total">30<', html)


def test_install_is_previewed_then_confirmed(web: Web, mint: Minter) -> None:
    client = web.admin_client()
    base = web.core.ledger.state().base_jti
    addon = mint("addon", seats=5, lic=base, purchased_at=web.clock.now(), jti="addon-new")
    status, html = _form(web, client, "/admin/licence/install", token=addon)
    assert status == 200
    assert 'id="install-preview"' in html and 'id="preview-jti">addon-new<' in html
    assert 'id="preview-seats">30<' in html and 'id="preview-nobody"' in html
    assert 'id="licence-confirm-form"' in html
    # The dry run changed nothing and audited nothing.
    assert web.events("license.installed")[0].subject != "addon-new"
    assert web.core.ledger.state().seats_total == 25
    status, html = _form(web, client, "/admin/licence/install", token=addon, confirm="1")
    assert status == 303
    assert "Licence token addon-new installed." in html
    event = web.events("license.installed")[0]
    assert (event.subject, event.actor) == ("addon-new", ADMIN)
    assert web.core.ledger.state().seats_total == 30


def test_a_preview_lists_the_seats_a_removal_releases(web: Web, mint: Minter) -> None:
    base = web.core.ledger.state().base_jti
    addon = mint("addon", seats=5, lic=base, purchased_at=web.clock.now(), jti="addon-5")
    web.core.licensing.install(addon, actor="test")
    for index in range(28):
        web.core.accounts.add(f"extra{index:02d}", password="x" * 12, actor="test")
        web.core.ledger.assign(web.core.accounts.get(f"extra{index:02d}").id, actor="test")
    client = web.admin_client()
    # The admin keeps its seat through the shrink; four others lose theirs.
    web.core.ledger.set_pinned(web.core.accounts.get(ADMIN).id, True, actor="test")
    status, html = _form(web, client, "/admin/licence/remove", jti="addon-5")
    assert status == 200
    assert 'id="preview-released"' in html
    released = re.findall(r"<li>([^<]+)</li>", html)
    assert len(released) == 29 - 25
    assert web.core.ledger.state().seats_total == 30
    status, html = _form(web, client, "/admin/licence/remove", jti="addon-5", confirm="1")
    assert status == 303
    assert "Licence token addon-5 removed." in html
    assert web.core.ledger.state().seats_total == 25
    assert web.events("license.removed")[0].actor == ADMIN
    assert not any(web.holds(login) for login in released)


def test_refusals_say_why_and_change_nothing(web: Web) -> None:
    client = web.admin_client()
    base = str(web.core.ledger.state().base_jti)
    status, html = _form(web, client, "/admin/licence/remove", jti=base, confirm="1")
    assert status == 303
    assert "No installed add-on, site token or renewal coupon has that id" in html
    status, html = _form(web, client, "/admin/licence/install", token="eyJhbGciOiJub25lIn0.e30.")
    assert status == 303 and "The licence token was rejected" in html
    status, html = _form(web, client, "/admin/licence/install", token="")
    assert status == 303 and "Paste a licence token" in html
    assert web.events("license.removed") == []
    answer = client.post("/admin/licence/remove", data={"jti": "x", "confirm": "1"})
    assert answer.status_code == 400


def test_the_page_is_in_spanish_too(web: Web) -> None:
    client = web.admin_client()
    client.get("/language/es")
    html = client.get("/admin/licence").get_data(as_text=True)
    assert '<html lang="es">' in html
    assert "Comprobar y previsualizar…" in html and "Retirar…" not in html


def test_an_uploaded_token_file_is_previewed(web: Web, mint: Minter) -> None:
    client = web.admin_client()
    base = web.core.ledger.state().base_jti
    addon = mint("addon", seats=2, lic=base, purchased_at=web.clock.now(), jti="addon-file")
    token = web.csrf(client, "/admin/licence")
    answer = client.post(
        "/admin/licence/install",
        data={"csrf_token": token, "token_file": (io.BytesIO(addon.encode() + b"\n"), "a.jwt")},
        content_type="multipart/form-data",
    )
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200 and 'id="preview-jti">addon-file<' in html
    # The preview carries the checked token itself to the confirm step.
    assert f'name="token" value="{addon}"' in html
    assert web.core.ledger.state().seats_total == 25


def test_a_trial_shows_its_days_left(make_web: Callable[..., Web], mint: Minter) -> None:
    web = make_web(licence=False)
    web.core.licensing.install(mint("trial", seats=25), actor="test")
    html = web.admin_client().get("/admin/licence").get_data(as_text=True)
    trial = re.search(r'id="trial-left">([^<]*)<', html)
    assert trial is not None
    assert "trial until Apr 1, 2026" in trial.group(1) and "30 days left" in trial.group(1)
