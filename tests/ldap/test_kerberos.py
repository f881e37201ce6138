"""Kerberos sign-on (SPNEGO) at GET /login/negotiate, against Samba's real KDC.

The session's Samba AD DC is also the KDC (127.0.0.1:88). Here a service
account gets the SPN HTTP/intranet.seatgate.test and its keytab
(``samba-tool``); users get tickets with their password (python-gssapi's
``acquire_cred_with_password``, as kinit does) and a real GSSAPI client
drives the negotiate door of the web gate. The directory accounts come from
the directory sync, as in production. The seat-limit scenarios of
tests/test_doors.py run through this door too, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gssapi
import pytest
from flask.testing import FlaskClient
from gssapi.raw.misc import GSSError
from werkzeug.test import TestResponse

from seatgate.adapters.flask.server import create_app
from seatgate.app import Core
from seatgate.audit import log as audit
from seatgate.config import WebConfig
from seatgate.config.kerberos import KerberosConfig
from seatgate.records import AuditEvent
from tests.ldap.conftest import UniqueNames, unavailable
from tests.ldap.product import PASSWORD, Installer, ad_ou, make_sync, reader, samba_config
from tests.ldap.servers import SambaAD
from tests.test_gate import fill_seats

SPNEGO = gssapi.OID.from_int_seq("1.3.6.1.5.5.2")
CHROMIUM = "/usr/bin/chromium"
# As tests/e2e runs Debian's Chromium here: as root, headless.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
SERVICE_HOST = "intranet.seatgate.test"
SERVICE = f"HTTP/{SERVICE_HOST}@{SambaAD.realm}"
KRB5_CONF = f"""[libdefaults]
    default_realm = {SambaAD.realm}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false
    dns_canonicalize_hostname = false
    udp_preference_limit = 1
[realms]
    {SambaAD.realm} = {{
        kdc = 127.0.0.1
    }}
[domain_realm]
    .{SambaAD.dns_domain} = {SambaAD.realm}
"""


@dataclass
class Kdc:
    """The KDC of the session's Samba domain, with the web service's account and keytab."""

    samba: SambaAD
    folder: Path
    keytab: Path

    def client(
        self, user: str, password: str = PASSWORD, *, service_host: str = SERVICE_HOST
    ) -> gssapi.SecurityContext:
        """A SPNEGO initiator for ``user`` (a ticket got with the password, as kinit does)."""
        name = gssapi.Name(f"{user}@{self.samba.realm}", gssapi.NameType.kerberos_principal)
        creds = gssapi.raw.acquire_cred_with_password(
            name, password.encode(), usage="initiate", mechs=[SPNEGO]
        ).creds
        target = gssapi.Name(f"HTTP@{service_host}", gssapi.NameType.hostbased_service)
        flags = gssapi.RequirementFlag.mutual_authentication
        return gssapi.SecurityContext(
            name=target, creds=gssapi.Credentials(creds), usage="initiate", mech=SPNEGO, flags=flags
        )

    def header(self, context: gssapi.SecurityContext) -> str:
        return "Negotiate " + base64.b64encode(context.step()).decode()

    def config(self, **changes: Any) -> KerberosConfig:
        settings: dict[str, Any] = {
            "keytab": self.keytab,
            "service_principal": SERVICE,
            "realms": (self.samba.realm,),
        }
        settings.update(changes)
        return KerberosConfig(**settings)


@pytest.fixture(scope="module")
def kdc(samba_ad: SambaAD, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kdc]:
    folder = tmp_path_factory.mktemp("kerberos")
    (folder / "krb5.conf").write_text(KRB5_CONF, encoding="utf-8")
    (folder / "rcache").mkdir()
    saved = {key: os.environ.get(key) for key in ("KRB5_CONFIG", "KRB5RCACHEDIR", "KRB5CCNAME")}
    # The test's own krb5.conf (never the host's), one replay cache folder
    # for the session, and no ticket cache of anyone's.
    os.environ["KRB5_CONFIG"] = str(folder / "krb5.conf")
    os.environ["KRB5RCACHEDIR"] = str(folder / "rcache")
    os.environ["KRB5CCNAME"] = f"FILE:{folder / 'no-ccache'}"
    names = UniqueNames()
    service = names("svcweb")
    service_password = f"Svc-{os.urandom(8).hex()}-Aa1!"
    samba_ad.create_user(service, service_password)
    samba_ad.samba_tool("spn", "add", f"HTTP/{SERVICE_HOST}", service)
    keytab = folder / "http.keytab"
    export_keytab(samba_ad, keytab, f"HTTP/{SERVICE_HOST}")
    found = Kdc(samba_ad, folder, keytab)
    try:
        wait_for_kdc(found, service, service_password)
        yield found
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def export_keytab(samba: SambaAD, keytab: Path, principal: str) -> None:
    command = [shutil.which("samba-tool") or "/usr/bin/samba-tool", "domain", "exportkeytab"]
    command += [str(keytab), f"--principal={principal}", "-s", str(samba.smb_conf)]
    subprocess.run(command, check=True, capture_output=True, timeout=60)


@dataclass
class Site:
    """An installation synced from the test's OU, served by the web gate with the door."""

    core: Core
    client: FlaskClient

    def negotiate(self, header: str | None, **query: str) -> TestResponse:
        headers = {"Authorization": header} if header is not None else {}
        return self.client.get("/login/negotiate", query_string=query, headers=headers)

    def signed_in_as(self) -> str | None:
        answer = self.client.get("/auth/verify")
        return answer.headers.get("X-Seatgate-User") if answer.status_code == 200 else None

    def events(self, action: str) -> list[AuditEvent]:
        return self.core.db.read(lambda conn: audit.recent(conn, limit=50, action=action))

    def sync(self) -> None:
        # A test's OU holds a few users: disabling one is no mass change.
        make_sync(self.core, max_disable_ratio=1.0).run(reader(self.core))


@pytest.fixture
def make_site(
    kdc: Kdc, install: Installer, names: UniqueNames, clock: Any
) -> Callable[..., tuple[Site, list[str]]]:
    """make_site(url, users=3, seats=25, **kerberos_changes) -> (site, sAMAccountNames)."""

    def _make(
        url: str, *, users: int = 3, seats: int | None = 25, ldap: Any = None, **changes: Any
    ) -> tuple[Site, list[str]]:
        ou = ad_ou(kdc.samba, names)
        # Over LDAPS, so the users get Kerberos keys.
        logins = kdc.samba.create_users_bulk(
            names.prefix, users, PASSWORD, ou_dn=ou, hash_locally=False
        )
        directory = samba_config(kdc.samba, ou, **(ldap or {}))
        base = install(url, directory, service_password=kdc.samba.admin_password, seats=seats)
        web = WebConfig(kerberos=kdc.config(**changes))
        core = Core.build(replace(base.config, web=web), clock=clock)
        install.built.append(core)
        app = create_app(core=core)
        app.config["TESTING"] = True
        site = Site(core, app.test_client())
        site.sync()
        return site, logins

    return _make


def challenged(answer: TestResponse) -> bool:
    """A 401 with the Negotiate challenge, whose body is the password form."""
    return (
        answer.status_code == 401
        and answer.headers.get("WWW-Authenticate") == "Negotiate"
        and 'name="password"' in answer.get_data(as_text=True)
    )


# --------------------------------------------------------------------------- signing in


def test_a_seated_user_gets_a_session_and_the_server_proves_itself(
    kdc: Kdc, make_site: Callable[..., tuple[Site, list[str]]], db_url: str
) -> None:
    site, (alice, *_) = make_site(db_url)
    client = kdc.client(alice)
    answer = site.negotiate(kdc.header(client), next="/portal")
    assert answer.status_code == 303
    assert answer.headers["Location"].endswith("/portal")
    assert site.signed_in_as() == alice
    assert site.core.ledger.holds_seat(site.core.accounts.get(alice).id)
    # Mutual authentication: the client accepts the acceptor's answer.
    scheme, _, token = answer.headers["WWW-Authenticate"].partition(" ")
    assert scheme == "Negotiate"
    client.step(base64.b64decode(token))
    assert client.complete
    event = site.events("login")[0]
    assert (event.subject, event.outcome, event.details["method"]) == (alice, "allowed", "kerberos")


def test_without_a_token_the_answer_is_the_challenge_with_the_form(
    make_site: Callable[..., tuple[Site, list[str]]], sqlite_url: str
) -> None:
    site, _ = make_site(sqlite_url, users=1)
    assert challenged(site.negotiate(None))
    # Another scheme is no token either.
    assert challenged(site.negotiate("Basic YWxpY2U6cHc="))
    assert site.events("login") == []


def test_the_seat_rules_are_the_password_door_s(
    kdc: Kdc, make_site: Callable[..., tuple[Site, list[str]]], db_url: str
) -> None:
    """test_doors' scenarios: a claim, a kept seat, no free seat, a holder when all are taken."""
    site, (alice, bob, carol) = make_site(db_url)
    fill_seats(site.core, 23)
    assert site.negotiate(kdc.header(kdc.client(alice))).status_code == 303
    assert site.negotiate(kdc.header(kdc.client(bob))).status_code == 303
    refused = site.negotiate(kdc.header(kdc.client(carol)))
    assert refused.status_code == 403
    assert 'data-reason="no_seat_available"' in refused.get_data(as_text=True)
    assert "WWW-Authenticate" not in refused.headers or refused.headers[
        "WWW-Authenticate"
    ].startswith("Negotiate ")
    # The holders keep getting in with every seat taken.
    again = Site(site.core, site.client.application.test_client())
    assert again.negotiate(kdc.header(kdc.client(alice))).status_code == 303
    assert site.core.ledger.used() == 25
    outcomes = [(e.subject, e.outcome, e.details["method"]) for e in site.events("login")]
    assert outcomes[:2] == [
        (alice, "allowed", "kerberos"),
        (carol, "no_seat_available", "kerberos"),
    ]


def test_without_a_licence_the_answer_is_license_invalid(
    kdc: Kdc, make_site: Callable[..., tuple[Site, list[str]]], sqlite_url: str
) -> None:
    site, (alice, *_) = make_site(sqlite_url, seats=None, users=1)
    answer = site.negotiate(kdc.header(kdc.client(alice)))
    assert answer.status_code == 403
    assert 'data-reason="license_invalid"' in answer.get_data(as_text=True)
    assert site.core.ledger.used() == 0


def test_a_user_disabled_in_ad_is_refused(
    kdc: Kdc, make_site: Callable[..., tuple[Site, list[str]]], db_url: str
) -> None:
    site, (alice, *_) = make_site(db_url, users=1)
    # A ticket got before the account was disabled (tickets live for hours).
    header = kdc.header(kdc.client(alice))
    kdc.samba.disable_user(alice)
    # The KDC gives a disabled account no new ticket ...
    with pytest.raises(GSSError, match="revoked"):
        kdc.client(alice)
    # ... and once the sync has seen it, the gate refuses the old one.
    site.sync()
    answer = site.negotiate(header)
    assert answer.status_code == 403
    assert 'data-reason="account_disabled"' in answer.get_data(as_text=True)
    assert site.signed_in_as() is None
    assert site.core.ledger.used() == 0


def test_a_realm_not_listed_is_refused(
    kdc: Kdc, make_site: Callable[..., tuple[Site, list[str]]], sqlite_url: str
) -> None:
    site, (alice, *_) = make_site(sqlite_url, users=1, realms=("OTHER.EXAMPLE",))
    answer = site.negotiate(kdc.header(kdc.client(alice)))
    assert answer.status_code == 401
    assert 'data-reason="invalid_credentials"' in answer.get_data(as_text=True)
    assert site.signed_in_as() is None
    event = site.events("login")[0]
    assert event.subject == f"{alice}@{kdc.samba.realm}"
    assert (event.outcome, event.details["detail"], event.details["method"]) == (
        "invalid_credentials",
        f"realm {kdc.samba.realm} is not accepted",
        "kerberos",
    )


def test_a_local_account_of_the_same_name_is_not_signed_in(
    kdc: Kdc, make_site: Callable[..., tuple[Site, list[str]]], sqlite_url: str
) -> None:
    """Only directory accounts stand for a principal: a local `alice` proved nothing to the KDC."""
    site, (alice, *_) = make_site(sqlite_url, users=1, ldap={"user_filter": "(cn=nobody)"})
    site.core.accounts.add(alice, password="Local-pw-1", actor="test")
    answer = site.negotiate(kdc.header(kdc.client(alice)))
    assert answer.status_code == 401
    assert site.events("login")[0].details["detail"] == "no directory account"


def test_a_directory_whose_logins_are_upns_maps_the_principal_to_them(
    kdc: Kdc, make_site: Callable[..., tuple[Site, list[str]]], sqlite_url: str
) -> None:
    ldap = {"attributes": replace(samba_config_attributes(), login="userPrincipalName")}
    site, (alice, *_) = make_site(sqlite_url, users=1, ldap=ldap)
    assert site.negotiate(kdc.header(kdc.client(alice))).status_code == 303
    assert site.signed_in_as() == f"{alice}@{kdc.samba.dns_domain}"


def samba_config_attributes() -> Any:
    from seatgate.config.ldap import PRESETS

    return PRESETS["ad"][1]


# --------------------------------------------------------------------------- bad tokens


def test_garbage_and_replayed_tokens_are_401_and_never_logged(
    kdc: Kdc,
    make_site: Callable[..., tuple[Site, list[str]]],
    db_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    site, (alice, bob, _) = make_site(db_url)
    used = kdc.header(kdc.client(alice))
    assert site.negotiate(used).status_code == 303
    fresh = kdc.header(kdc.client(bob))
    truncated = fresh[: len(fresh) // 2]
    garbage = "Negotiate " + base64.b64encode(os.urandom(300)).decode()
    caplog.set_level(logging.DEBUG)
    for header in (used, garbage, truncated, "Negotiate not*base64", "Negotiate "):
        other = Site(site.core, site.client.application.test_client())
        answer = other.negotiate(header)
        assert challenged(answer), header[:40]
        assert 'data-reason="kerberos_failed"' in answer.get_data(as_text=True)
        assert other.signed_in_as() is None
    assert site.core.ledger.used() == 1
    assert [e.subject for e in site.events("login")] == [alice]
    # Refused tokens are audited in aggregate, naming the address only.
    (refused,) = site.events("kerberos.refused")
    assert set(refused.details) == {"throttled", "scope", "address"}
    assert "replay" in caplog.text.lower()
    for header in (used, garbage, truncated):
        token = header.split(" ", 1)[1]
        assert token[:24] not in caplog.text
        assert token[:24] not in str([e.details for e in site.events("kerberos.refused")])


def test_a_ticket_for_another_service_is_refused(
    kdc: Kdc, make_site: Callable[..., tuple[Site, list[str]]], names: UniqueNames, sqlite_url: str
) -> None:
    """A real ticket from the same KDC, for a key the gate does not hold."""
    site, (alice, *_) = make_site(sqlite_url, users=1)
    other = names("svcother")
    kdc.samba.create_user(other, f"Svc-{os.urandom(8).hex()}-Aa1!")
    kdc.samba.samba_tool("spn", "add", f"HTTP/{other}.seatgate.test", other)
    client = kdc.client(alice, service_host=f"{other}.seatgate.test")
    assert challenged(site.negotiate(kdc.header(client)))
    assert site.signed_in_as() is None


def wait_for_kdc(kdc: Kdc, user: str, password: str, timeout: float = 15.0) -> None:
    """The KDC answers a second or two after LDAP does."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            kdc.client(user, password)
            return
        except GSSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# --------------------------------------------------------------------------- doctor kerberos


LOCAL_SERVICE = "HTTP/localhost@SEATGATE.TEST"


@dataclass
class DoctorSetUp:
    """A service account with the SPN HTTP/localhost (a name that resolves here) and its keytab."""

    account: str
    keytab: Path
    tgt: Path

    def ccache(self, folder: Path) -> str:
        """A ticket cache holding only the operator's TGT (service tickets are cached too)."""
        shutil.copy(self.tgt, folder / "operator.ccache")
        return f"FILE:{folder / 'operator.ccache'}"


@pytest.fixture(scope="module")
def doctor_set_up(kdc: Kdc) -> DoctorSetUp:
    names = UniqueNames()
    account = names("svcdoc")
    kdc.samba.create_user(account, f"Svc-{os.urandom(8).hex()}-Aa1!")
    kdc.samba.samba_tool("spn", "add", "HTTP/localhost", account)
    keytab = kdc.folder / "doctor.keytab"
    export_keytab(kdc.samba, keytab, "HTTP/localhost")
    # The operator's own ticket, as `kinit` leaves it.
    user = names("op")
    kdc.samba.create_user(user, PASSWORD)
    tgt = kdc.folder / "operator.tgt"
    subprocess.run(
        ["kinit", "-c", f"FILE:{tgt}", f"{user}@{kdc.samba.realm}"],
        input=PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
        timeout=30,
    )
    return DoctorSetUp(account, keytab, tgt)


def doctor(
    tmp_path: Path, vendor_key: Any, kerberos: dict[str, Any], *args: str
) -> tuple[int, str]:
    from click.testing import CliRunner

    from seatgate.cli.main import cli
    from tests.conftest import write_config

    path = write_config(
        tmp_path / "seatgate.yaml",
        f"sqlite:///{tmp_path / 'seatgate.db'}",
        vendor_key,
        {"web": {"kerberos": kerberos}},
    )
    result = CliRunner().invoke(cli, ["--config", str(path), "doctor", "kerberos", *args])
    return result.exit_code, result.output


def statuses(output: str) -> dict[str, str]:
    import json

    document = json.loads(output)
    found: dict[str, str] = {}
    for check in document["checks"]:
        # The worst finding of each check.
        order = ["ok", "skip", "warn", "fail"]
        if order.index(check["status"]) >= order.index(found.get(check["name"], "ok")):
            found[check["name"]] = check["status"]
    return found


def test_doctor_passes_a_good_set_up(
    kdc: Kdc,
    doctor_set_up: DoctorSetUp,
    tmp_path: Path,
    vendor_key: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KRB5CCNAME", doctor_set_up.ccache(tmp_path))
    section = {
        "keytab": str(doctor_set_up.keytab),
        "service_principal": "HTTP/localhost@SEATGATE.TEST",
    }
    code, output = doctor(tmp_path, vendor_key, section, "--kdc", "127.0.0.1", "--json")
    assert code == 0, output
    assert statuses(output) == {
        "keytab": "ok",
        "acceptor": "ok",
        "realms": "ok",
        "dns": "ok",
        "clock": "ok",
        "ticket": "ok",
    }
    # The text form says the same, a line per finding.
    code, text = doctor(tmp_path, vendor_key, section)
    assert code == 0
    assert "aes256-cts-hmac-sha1-96" in text
    assert "FAIL" not in text
    assert text.rstrip().endswith("no failures")


def test_doctor_names_a_principal_the_keytab_does_not_hold(
    kdc: Kdc, doctor_set_up: DoctorSetUp, tmp_path: Path, vendor_key: Any
) -> None:
    section = {
        "keytab": str(doctor_set_up.keytab),
        "service_principal": "HTTP/portal.seatgate.test@SEATGATE.TEST",
    }
    code, output = doctor(tmp_path, vendor_key, section, "--kdc", "127.0.0.1", "--json")
    assert code == 1
    found = statuses(output)
    assert (found["keytab"], found["acceptor"], found["dns"]) == ("fail", "fail", "fail")
    code, text = doctor(tmp_path, vendor_key, section, "--kdc", "127.0.0.1")
    assert "holds no key for HTTP/portal.seatgate.test@SEATGATE.TEST" in text
    assert "HTTP/localhost@SEATGATE.TEST" in text  # what it does hold
    assert "fix: " in text


def test_doctor_finds_a_keytab_older_than_the_account_s_key(
    kdc: Kdc,
    doctor_set_up: DoctorSetUp,
    tmp_path: Path,
    vendor_key: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A password change bumps the key version: the old export no longer reads tickets."""
    stale = tmp_path / "stale.keytab"
    shutil.copy(doctor_set_up.keytab, stale)
    monkeypatch.setenv("KRB5CCNAME", doctor_set_up.ccache(tmp_path))
    kdc.samba.set_password(doctor_set_up.account, f"Svc-{os.urandom(8).hex()}-Aa1!")
    try:
        section = {"keytab": str(stale), "service_principal": "HTTP/localhost@SEATGATE.TEST"}
        code, output = doctor(tmp_path, vendor_key, section, "--kdc", "127.0.0.1", "--json")
        assert code == 1
        assert statuses(output)["ticket"] == "fail"
        assert "re-export" in output or "export the service account" in output
    finally:
        export_keytab(kdc.samba, doctor_set_up.keytab, "HTTP/localhost")


def test_doctor_refuses_a_missing_keytab_naming_the_key(
    tmp_path: Path, vendor_key: Any, kdc: Kdc
) -> None:
    section = {
        "keytab": str(tmp_path / "absent.keytab"),
        "service_principal": "HTTP/localhost@SEATGATE.TEST",
    }
    code, output = doctor(tmp_path, vendor_key, section)
    assert code == 2
    assert "web.kerberos.keytab" in output
    assert "does not exist" in output


def test_doctor_says_when_no_kdc_answers(
    doctor_set_up: DoctorSetUp, tmp_path: Path, vendor_key: Any
) -> None:
    section = {
        "keytab": str(doctor_set_up.keytab),
        "service_principal": "HTTP/localhost@SEATGATE.TEST",
    }
    code, output = doctor(tmp_path, vendor_key, section, "--kdc", "127.0.0.1:9", "--json")
    assert code == 1
    assert statuses(output)["clock"] == "fail"


# --------------------------------------------------------------------------- a real browser


def test_chromium_signs_in_with_the_user_s_ticket(
    kdc: Kdc,
    install: Installer,
    names: UniqueNames,
    sqlite_url: str,
    clock: Any,
    tmp_path: Path,
) -> None:
    """Chromium with a ticket cache (as after a Windows logon) signs in at GET /login unasked.

    Chromium names the service after the host it connects to: here the
    loopback address, so the service account holds HTTP/127.0.0.1.
    """
    import threading

    from werkzeug.serving import make_server

    if not Path(CHROMIUM).exists():
        unavailable("Chromium", f"{CHROMIUM} is not installed; run scripts/ensure-browser")
    try:
        from playwright import sync_api
    except ImportError:
        unavailable("Playwright", "not installed; run scripts/setup")
    account = names("svcip")
    kdc.samba.create_user(account, f"Svc-{os.urandom(8).hex()}-Aa1!")
    kdc.samba.samba_tool("spn", "add", "HTTP/127.0.0.1", account)
    keytab = tmp_path / "ip.keytab"
    export_keytab(kdc.samba, keytab, "HTTP/127.0.0.1")
    ou = ad_ou(kdc.samba, names)
    (alice,) = kdc.samba.create_users_bulk(names.prefix, 1, PASSWORD, ou_dn=ou, hash_locally=False)
    base = install(
        sqlite_url, samba_config(kdc.samba, ou), service_password=kdc.samba.admin_password
    )
    web = WebConfig(
        secure_cookies=False,
        kerberos=kdc.config(
            keytab=keytab,
            service_principal=f"HTTP/127.0.0.1@{kdc.samba.realm}",
            auto_networks=(ipaddress.ip_network("127.0.0.0/8"),),
        ),
    )
    core = Core.build(replace(base.config, web=web), clock=clock)
    install.built.append(core)
    make_sync(core).run(reader(core))
    ccache = tmp_path / "alice.ccache"
    subprocess.run(
        ["kinit", "-c", f"FILE:{ccache}", f"{alice}@{kdc.samba.realm}"],
        input=PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
        timeout=30,
    )
    server = make_server("127.0.0.1", 0, create_app(core=core), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    env = {**os.environ, "KRB5CCNAME": f"FILE:{ccache}"}
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=[*CHROMIUM_ARGS, "--auth-server-allowlist=127.0.0.1"],
                env=env,
            )
            try:
                page = browser.new_page()
                # The first challenge of a fresh browser process may fail before
                # Chromium has loaded the GSSAPI library; a second try is normal.
                for _ in range(3):
                    page.goto(url + "/login?next=/")
                    if page.url == url + "/":
                        break
                assert page.url == url + "/", page.content()[:400]
                assert alice in page.content()
            finally:
                browser.close()
    finally:
        server.shutdown()
        thread.join(timeout=10)
    event = core.db.read(lambda conn: audit.recent(conn, limit=5, action="login"))[0]
    assert (event.subject, event.outcome, event.details["method"]) == (alice, "allowed", "kerberos")
