"""The console's seat-use page: admins only, three SVG charts, a CSV for each, both languages."""

from __future__ import annotations

import csv
import io
import re

import pytest

from tests.web_support import Web


def test_anonymous_visitors_are_sent_to_sign_in(web: Web) -> None:
    answer = web.client().get("/admin/charts")
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/login?next=/admin/charts")


@pytest.mark.parametrize("path", ["/admin/charts", "/admin/charts/seats-daily.csv"])
def test_users_get_403(web: Web, path: str) -> None:
    client = web.client()
    web.login(client, "user000")
    assert client.get(path).status_code == 403


def test_the_page_draws_three_accessible_charts(web: Web) -> None:
    client = web.admin_client()
    web.login(web.client(), "user001")
    web.login(web.client(), "user002", "wrong")
    assert 'id="charts-link"' in client.get("/admin").get_data(as_text=True)
    html = client.get("/admin/charts").get_data(as_text=True)
    for chart in ("seats-daily-chart", "seats-monthly-chart", "logins-daily-chart"):
        svg = re.search(rf'<svg [^>]*id="{chart}"[^>]*>', html)
        assert svg is not None, chart
        assert 'role="img"' in svg.group(0)
        assert "viewBox=" in svg.group(0)
        assert f'<title id="{chart}-title">' in html
        assert f'<desc id="{chart}-desc">' in html
    assert "<script" not in html
    assert "Seats held" in html and "Seats entitled" in html
    # Admin and user001 signed in (allowed), user002 refused: the totals say so.
    assert re.search(r'data-outcome="allowed"><td>Allowed</td><td class="count">2<', html)
    assert re.search(r'data-outcome="invalid_credentials"><td>[^<]+</td><td class="count">1<', html)
    for name in ("seats-daily", "seats-monthly", "logins-daily"):
        assert f'href="/admin/charts/{name}.csv"' in html


def test_each_chart_downloads_its_data(web: Web) -> None:
    client = web.admin_client()
    today = web.clock.now().date().isoformat()
    answer = client.get("/admin/charts/seats-daily.csv")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in answer.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True))))
    assert rows[0] == ["day", "seats_held", "seats_entitled"]
    assert len(rows) == 91
    # The admin's seat, of the 25 entitled.
    assert rows[-1] == [today, "1", "25"]
    months = list(csv.reader(io.StringIO(client.get("/admin/charts/seats-monthly.csv").text)))
    assert months[-1][1] == "1"
    logins = list(csv.reader(io.StringIO(client.get("/admin/charts/logins-daily.csv").text)))
    assert logins[0][:2] == ["day", "allowed"]
    assert logins[-1][:2] == [today, "1"]
    assert client.get("/admin/charts/nothing.csv").status_code == 404


def test_the_page_is_in_spanish_too(web: Web) -> None:
    client = web.admin_client()
    client.get("/language/es")
    html = client.get("/admin/charts").get_data(as_text=True)
    assert '<html lang="es">' in html
    assert "Uso de plazas" in html
    assert "Descargar los datos (CSV)" in html
