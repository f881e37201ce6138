"""Request body limits (web.max_body_bytes), unreadable JSON, and HSTS."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.web_support import Web

LIMIT = 8192


class CountingBody(io.RawIOBase):
    """A request body of ``size`` bytes made as it is read, counting what was read.

    Seekable only so the test client can measure it; seeking reads nothing.
    """

    def __init__(self, size: int, head: bytes = b'{"login": "') -> None:
        self.size = size
        self.head = head
        self.position = 0
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = self.size + offset if whence == 2 else offset
        return self.position

    def readinto(self, buffer: Any) -> int:
        count = max(0, min(len(buffer), self.size - self.position))
        data = (self.head + b"a" * count)[self.position : self.position + count]
        data += b"a" * (count - len(data))
        buffer[:count] = data
        self.position += count
        self.read_bytes += count
        return count


def _chunked(client: FlaskClient, path: str, body: CountingBody, **kw: Any) -> TestResponse:
    # No Content-Length, the server says the stream ends by itself: a chunked upload.
    return client.post(
        path,
        input_stream=body,
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""},
        **kw,
    )


@pytest.fixture
def limited(make_web: Callable[..., Web]) -> Web:
    return make_web(max_body_bytes=LIMIT)


def test_a_hundred_megabyte_login_body_is_refused_unread(limited: Web) -> None:
    body = CountingBody(100 * 1024 * 1024)
    answer = limited.client().post(
        "/api/login",
        input_stream=body,
        content_type="application/json",
    )
    assert answer.status_code == 413
    assert answer.get_json()["error"] == "request_too_large"
    assert body.read_bytes == 0


def test_a_chunked_login_body_without_length_is_cut_off_at_the_limit(limited: Web) -> None:
    body = CountingBody(100 * 1024 * 1024)
    answer = _chunked(limited.client(), "/api/login", body, content_type="application/json")
    assert answer.status_code == 413
    assert answer.get_json()["error"] == "request_too_large"
    # Read until the limit showed, never the whole 100 MB.
    assert body.read_bytes <= LIMIT + 64 * 1024


def test_an_oversized_licence_install_is_413(limited: Web) -> None:
    client = limited.admin_client()
    answer = client.post("/api/license", json={"token": "x" * (LIMIT + 1)})
    assert answer.status_code == 413
    assert answer.get_json()["error"] == "request_too_large"


def test_an_oversized_login_form_is_413_with_the_html_error_page(limited: Web) -> None:
    client = limited.client()
    token = limited.csrf(client)
    form = {"login": "user000", "password": "p" * (LIMIT + 1), "csrf_token": token}
    answer = client.post("/login", data=form)
    assert answer.status_code == 413
    assert answer.mimetype == "text/html"
    assert "The request is too large." in answer.get_data(as_text=True)
    assert "Content-Security-Policy" in answer.headers


def test_a_chunked_login_form_is_cut_off_at_the_limit(limited: Web) -> None:
    body = CountingBody(100 * 1024 * 1024, head=b"login=user000&password=")
    answer = _chunked(
        limited.client(), "/login", body, content_type="application/x-www-form-urlencoded"
    )
    assert answer.status_code == 413
    assert body.read_bytes <= LIMIT + 64 * 1024


def test_the_default_limit_admits_a_licence_token_at_its_field_limit(web: Web) -> None:
    client = web.admin_client()
    # The token field takes up to 64 KiB; the default body limit must not cut it shorter.
    answer = client.post("/api/license", json={"token": "x" * (64 * 1024)})
    assert answer.status_code == 400
    assert answer.get_json()["error"] != "request_too_large"


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 60_000 + b"]" * 60_000,
        b'{"a": ' * 15_000 + b"1" + b"}" * 15_000,
        b'{"login": "\xff\xfe", "password": "x"}',
        b'{"login": "\\ud800", "password": "x"}',
        b'{"login": ' + b"9" * 5000 + b', "password": "x"}',
        b'{"login": "a", "password": ',
    ],
    ids=["deep-array", "deep-object", "bad-utf8", "lone-surrogate", "huge-number", "truncated"],
)
def test_pathological_json_to_the_login_api_is_400_not_500(web: Web, body: bytes) -> None:
    answer = web.client().post("/api/login", data=body, content_type="application/json")
    assert answer.status_code == 400
    assert answer.get_json()["error"] == "bad_json"


def test_deeply_nested_json_to_the_licence_api_is_400(web: Web) -> None:
    client = web.admin_client()
    body = b'{"token": ' + b"[" * 60_000 + b"]" * 60_000 + b"}"
    answer = client.post("/api/license", data=body, content_type="application/json")
    assert answer.status_code == 400


def test_a_small_login_still_works_under_the_limit(limited: Web) -> None:
    answer = limited.api_login(limited.client(), "user000")
    assert answer.status_code == 200
    assert json.loads(answer.get_data())["login"] == "user000"


def test_hsts_is_sent_while_cookies_are_secure(make_web: Callable[..., Web]) -> None:
    web = make_web(secure_cookies=True)
    for path in ("/login", "/api/me", "/"):
        answer = web.client().get(path)
        assert answer.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_hsts_max_age_is_configurable(make_web: Callable[..., Web]) -> None:
    answer = make_web(hsts_max_age=600).client().get("/login")
    assert answer.headers["Strict-Transport-Security"] == "max-age=600"


@pytest.mark.parametrize("options", [{"secure_cookies": False}, {"hsts_max_age": 0}])
def test_no_hsts_without_secure_cookies_or_with_max_age_zero(
    make_web: Callable[..., Web], options: dict[str, Any]
) -> None:
    answer = make_web(**options).client().get("/login")
    assert "Strict-Transport-Security" not in answer.headers
