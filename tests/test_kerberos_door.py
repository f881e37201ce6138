"""The Kerberos door without a KDC: its configuration, principal names, and the web flow
around the ticket (the challenge, the automatic try for listed networks, sign-out).

Tickets from a real KDC are in tests/ldap/test_kerberos.py. Here the keytab
is written by the test with a random key: enough for the acceptor to start
and to refuse every token.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from seatgate.config import config_from_mapping
from seatgate.config.kerberos import KerberosConfig
from seatgate.errors import ConfigError
from seatgate.gate.principals import candidate_logins, split_principal
from seatgate.licensing.vendor import generate_key
from tests.web_support import Web

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"
SERVICE = "HTTP/intranet.example.com@EXAMPLE.COM"
OFFICE = "10.1.2.3"


def write_keytab(path: Path, principal: str, *, kvno: int = 3) -> Path:
    """An MIT keytab holding one random AES-256 key for ``principal``."""
    name, realm = principal.rsplit("@", 1)

    def counted(text: str) -> bytes:
        return struct.pack(">H", len(text)) + text.encode()

    parts = name.split("/")
    body = struct.pack(">H", len(parts)) + counted(realm) + b"".join(map(counted, parts))
    body += (
        struct.pack(">IIBHH", 1, 0, kvno % 256, 18, 32) + os.urandom(32) + struct.pack(">I", kvno)
    )
    path.write_bytes(b"\x05\x02" + struct.pack(">i", len(body)) + body)
    return path


@pytest.fixture
def keytab(tmp_path: Path) -> Path:
    return write_keytab(tmp_path / "http.keytab", SERVICE)


@pytest.fixture
def door(make_web: Callable[..., Web], keytab: Path) -> Web:
    config = KerberosConfig(
        keytab=keytab,
        service_principal=SERVICE,
        realms=("EXAMPLE.COM",),
        auto_networks=(ipaddress.ip_network("10.0.0.0/8"),),
    )
    return make_web(kerberos=config)


# --------------------------------------------------------------------------- the web flow


def test_listed_networks_are_sent_to_the_negotiate_door(door: Web) -> None:
    client = door.client()
    answer = client.get("/login?next=/portal", environ_base={"REMOTE_ADDR": OFFICE})
    assert answer.status_code == 303
    assert answer.headers["Location"].endswith("/login/negotiate?next=/portal")


@pytest.mark.parametrize(
    ("peer", "query"),
    [("192.0.2.7", ""), (OFFICE, "&sso=off")],
)
def test_others_and_sso_off_get_the_password_form(door: Web, peer: str, query: str) -> None:
    answer = door.client().get(f"/login?next=/portal{query}", environ_base={"REMOTE_ADDR": peer})
    assert answer.status_code == 200
    assert 'name="password"' in answer.get_data(as_text=True)


def test_the_challenge_is_a_401_whose_body_is_the_form(door: Web) -> None:
    answer = door.client().get("/login/negotiate?next=/portal")
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Negotiate"
    page = answer.get_data(as_text=True)
    assert 'name="password"' in page
    assert 'name="next" value="/portal"' in page
    # The form posts to /login: a browser without a ticket signs in there.
    assert 'action="/login"' in page


def test_the_form_behind_the_challenge_signs_in_with_a_password(door: Web) -> None:
    client = door.client()
    assert client.get("/login/negotiate").status_code == 401
    assert door.login(client, "user001").status_code == 303


@pytest.mark.parametrize(
    "header",
    [
        "Negotiate " + base64.b64encode(os.urandom(200)).decode(),
        "Negotiate %%%",
        "Negotiate " + "A" * 200_000,
        "negotiate YIIB",
    ],
)
def test_a_refused_token_gets_the_form_with_a_notice(door: Web, header: str) -> None:
    client = door.client()
    answer = client.get("/login/negotiate", headers={"Authorization": header})
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Negotiate"
    assert 'data-reason="kerberos_failed"' in answer.get_data(as_text=True)
    assert door.events("login") == []
    assert len(door.events("kerberos.refused")) == 1


def test_signing_out_shows_the_form_not_a_new_kerberos_session(door: Web) -> None:
    client = door.client()
    door.login(client, "user001")
    token = door.csrf(client, "/login?sso=off")
    answer = client.post("/logout", data={"csrf_token": token})
    assert answer.status_code == 303
    assert answer.headers["Location"].endswith("/login?sso=off")


def test_without_web_kerberos_there_is_no_negotiate_door(web: Web) -> None:
    assert web.client().get("/login/negotiate").status_code == 404


def test_the_gate_refuses_to_start_with_a_keytab_for_another_principal(
    make_web: Callable[..., Web], tmp_path: Path
) -> None:
    other = write_keytab(tmp_path / "other.keytab", "HTTP/other.example.com@EXAMPLE.COM")
    config = KerberosConfig(keytab=other, service_principal=SERVICE, realms=("EXAMPLE.COM",))
    with pytest.raises(ConfigError, match=r"web\.kerberos\.keytab"):
        make_web(kerberos=config)


# --------------------------------------------------------------------------- configuration


def _load(tmp_path: Path, section: dict[str, Any]) -> KerberosConfig | None:
    generate_key(tmp_path / "vendor-k1.pem", "k1")
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data.setdefault("web", {})["kerberos"] = section
    return config_from_mapping(data, tmp_path).web.kerberos


def test_a_valid_section_is_read_with_the_service_realm_by_default(
    tmp_path: Path, keytab: Path
) -> None:
    section = {"keytab": keytab.name, "service_principal": SERVICE, "auto_networks": ["10.0.0.0/8"]}
    config = _load(tmp_path, section)
    assert config is not None
    assert (config.keytab, config.realms) == (keytab, ("EXAMPLE.COM",))
    assert (config.service_host, config.service_realm) == ("intranet.example.com", "EXAMPLE.COM")
    assert config.automatic_for(OFFICE) and not config.automatic_for("192.0.2.1")
    assert config.realm_accepted("example.com")


@pytest.mark.parametrize(
    ("section", "key", "error"),
    [
        ({"service_principal": SERVICE}, "keytab", "is required"),
        ({"keytab": "absent.keytab", "service_principal": SERVICE}, "keytab", "does not exist"),
        ({"keytab": "http.keytab"}, "service_principal", "is required"),
        ({"keytab": "http.keytab", "service_principal": "HTTP/host"}, "service_principal", "form"),
        ({"keytab": "http.keytab", "service_principal": "alice@EX"}, "service_principal", "form"),
        (
            {"keytab": "http.keytab", "service_principal": SERVICE, "realms": ["A@B"]},
            "realms",
            "not a realm",
        ),
        (
            {"keytab": "http.keytab", "service_principal": SERVICE, "auto_networks": ["office"]},
            "auto_networks",
            "not an address",
        ),
        ({"keytab": "http.keytab", "service_principal": SERVICE, "kdc": "x"}, "kdc", "not a known"),
    ],
)
def test_configuration_mistakes_name_the_key(
    tmp_path: Path, keytab: Path, section: dict[str, Any], key: str, error: str
) -> None:
    with pytest.raises(ConfigError, match=rf"web\.kerberos\.{key}.*{error}"):
        _load(tmp_path, section)


# --------------------------------------------------------------------------- principal names


@pytest.mark.parametrize(
    ("principal", "split"),
    [
        ("alice@EXAMPLE.COM", ("alice", "EXAMPLE.COM")),
        ("alice\\@example.com@EXAMPLE.COM", ("alice@example.com", "EXAMPLE.COM")),
        ("HTTP/host@EXAMPLE.COM", None),
        ("alice", None),
        ("@EXAMPLE.COM", None),
        ("alice@", None),
        ("alice@EXAMPLE.COM@OTHER", None),
    ],
)
def test_principal_names_split_into_user_and_realm(
    principal: str, split: tuple[str, str] | None
) -> None:
    assert split_principal(principal) == split


def test_a_principal_may_be_an_account_s_upn_or_its_sam_account_name() -> None:
    assert candidate_logins("alice", "EXAMPLE.COM") == ("alice@EXAMPLE.COM", "alice")
    assert candidate_logins("alice@corp.example", "EXAMPLE.COM") == ("alice@corp.example",)


# --------------------------------------------------------------------------- doctor's readers


def test_the_keytab_reader_lists_principals_versions_and_enctypes(tmp_path: Path) -> None:
    from seatgate.adapters.kerberos_wire import KeytabError, read_keytab

    path = write_keytab(tmp_path / "k.keytab", SERVICE, kvno=300)
    (entry,) = read_keytab(path)
    assert (entry.principal, entry.kvno, entry.enctype_name) == (
        SERVICE,
        300,
        "aes256-cts-hmac-sha1-96",
    )
    (tmp_path / "not.keytab").write_bytes(b"hello")
    with pytest.raises(KeytabError):
        read_keytab(tmp_path / "not.keytab")
    (tmp_path / "cut.keytab").write_bytes(path.read_bytes()[:20])
    with pytest.raises(KeytabError):
        read_keytab(tmp_path / "cut.keytab")


def test_the_kdcs_of_a_realm_are_read_from_krb5_conf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from seatgate.adapters.kerberos_wire import kdcs_of

    conf = tmp_path / "krb5.conf"
    conf.write_text(
        "[libdefaults]\n  default_realm = EXAMPLE.COM\n"
        "[realms]\n  OTHER.COM = {\n    kdc = other.example\n  }\n"
        "  EXAMPLE.COM = {\n    kdc = dc1.example.com\n    kdc = dc2.example.com:750\n  }\n"
        "[domain_realm]\n  .example.com = EXAMPLE.COM\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("KRB5_CONFIG", str(conf))
    assert kdcs_of("EXAMPLE.COM") == [("dc1.example.com", 88), ("dc2.example.com", 750)]
    assert kdcs_of("NONE.COM") == []


def test_the_kdc_s_time_is_read_from_its_error_message() -> None:
    from datetime import UTC, datetime

    from seatgate.adapters import kerberos_wire as wire

    stime = wire._ctx(4, wire._der(0x18, b"20261202031500Z"))
    susec = wire._ctx(5, wire._int(250_000))
    code = wire._ctx(6, wire._int(6))
    error = wire._der(0x7E, wire._seq(wire._ctx(0, wire._int(5)), stime, susec, code))
    assert wire._error_time(error) == datetime(2026, 12, 2, 3, 15, 0, 250_000, tzinfo=UTC)
    with pytest.raises(OSError, match="not an error"):
        wire._error_time(wire._der(0x6B, wire._seq()))
    with pytest.raises(OSError):
        wire._error_time(error[:-3])
