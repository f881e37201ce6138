"""Several directory servers (``ldap.urls``) against the real servers.

The first URL is a closed port, or a listener that never answers; with
OpenLDAP, two slapd instances (3892 and 3893) hold the same entries (the
second loaded from the first's ``slapcat``, so entryUUIDs match, as on
replicas) and the first is stopped in the middle of a sync. Every
connection's URL is recorded by wrapping the adapter's ``open_connection``,
so the tests see which server each login and sync used.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import seatgate.adapters.ldap as adapter
from seatgate.adapters.ldap import LdapDirectory
from seatgate.adapters.ldap_servers import open_connection
from seatgate.cli.main import cli
from seatgate.errors import DirectoryUnavailable
from seatgate.gate.decision import Reason
from tests.conftest import write_config
from tests.ldap.conftest import UniqueNames
from tests.ldap.product import (
    PASSWORD,
    PASSWORD_ENV,
    Installer,
    ad_bulk,
    ad_ou,
    ldap_config,
    make_sync,
    ol_add_people,
    ol_container,
    openldap_config,
    refused,
    samba_config,
    seat_logins,
    tag_filter,
)
from tests.ldap.servers import OpenLDAP, SambaAD, TlsFiles

FIRST_PORT, SECOND_PORT = 3892, 3893


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(url, bind name) of every connection the adapter opens (answered or not)."""
    opened: list[tuple[str, str]] = []

    def recording(config: Any, url: str, user: str, password: str) -> Any:
        opened.append((url, user))
        return open_connection(config, url, user, password)

    monkeypatch.setattr(adapter, "open_connection", recording)
    return opened


def closed_port_url(scheme: str = "ldaps") -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"{scheme}://127.0.0.1:{port}"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A URL whose listener accepts connections and never answers a byte."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"ldap://127.0.0.1:{listener.getsockname()[1]}"


def several(config: Any, *urls: str, **changes: Any) -> Any:
    return replace(config, url=urls[0], urls=urls, **changes)


def directory(app: Any, **changes: Any) -> LdapDirectory:
    return LdapDirectory(replace(ldap_config(app), **changes))


# --------------------------------------------------------------------------- Samba AD


def test_ad_first_server_closed_login_and_sync_use_the_second(
    samba_ad: SambaAD,
    names: UniqueNames,
    install: Installer,
    sqlite_url: str,
    connections: list[tuple[str, str]],
) -> None:
    ou = ad_ou(samba_ad, names)
    users = ad_bulk(samba_ad, ou, names.prefix, 3)
    dead = closed_port_url()
    config = several(samba_config(samba_ad, ou), dead, samba_ad.url_ldaps)
    app = install(sqlite_url, config, service_password=samba_ad.admin_password)

    report = make_sync(app).run(directory(app))
    assert report.server == samba_ad.url_ldaps
    assert report.as_dict()["server"] == samba_ad.url_ldaps
    assert sorted(report.created) == sorted(users)
    alice = names.prefix + "00000"
    decision = app.gate.decide(alice, PASSWORD)
    assert decision.allowed and decision.seat_claimed
    assert seat_logins(app) == {alice}
    # The sync found dc1 dead, then the gate's verifier once; the bind was on dc2.
    assert connections[0] == (dead, samba_ad.admin_dn)
    assert [url for url, _ in connections].count(dead) == 2
    assert (samba_ad.url_ldaps, users[alice]) in connections
    connections.clear()
    assert app.gate.decide(alice, PASSWORD).allowed
    assert connections == [(samba_ad.url_ldaps, users[alice])]


def test_ad_sync_ldap_json_names_the_server_that_answered(
    samba_ad: SambaAD,
    names: UniqueNames,
    tmp_path: Path,
    sqlite_url: str,
    vendor_key: Any,
    clock: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ou = ad_ou(samba_ad, names)
    ad_bulk(samba_ad, ou, names.prefix, 2)
    monkeypatch.setenv(PASSWORD_ENV, samba_ad.admin_password)
    dead = closed_port_url()
    ldap = {
        "urls": [dead, samba_ad.url_ldaps],
        "ca_file": str(samba_ad.ca_file),
        "base_dn": ou,
        "bind_dn": samba_ad.admin_dn,
        "bind_password_env": PASSWORD_ENV,
    }
    path = write_config(tmp_path / "seatgate.yaml", sqlite_url, vendor_key, {"ldap": ldap})
    runner = CliRunner()
    assert runner.invoke(cli, ["--config", str(path), "init"], obj={"clock": clock}).exit_code == 0

    result = runner.invoke(
        cli, ["--config", str(path), "sync", "ldap", "--json"], obj={"clock": clock}
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["server"] == samba_ad.url_ldaps
    assert summary["created"] == 2

    # Every server down: one error naming each, nothing changed.
    ldap["urls"] = [dead, closed_port_url()]
    path = write_config(tmp_path / "seatgate.yaml", sqlite_url, vendor_key, {"ldap": ldap})
    down = runner.invoke(cli, ["--config", str(path), "sync", "ldap"], obj={"clock": clock})
    assert down.exit_code != 0
    for url in ldap["urls"]:
        assert url in down.output
    assert "none of the 2 directory servers answered" in down.output


def test_ad_every_server_down_names_each_and_refuses_logins(
    samba_ad: SambaAD, names: UniqueNames, install: Installer, sqlite_url: str
) -> None:
    ou = ad_ou(samba_ad, names)
    ad_bulk(samba_ad, ou, names.prefix, 2)
    app = install(sqlite_url, samba_config(samba_ad, ou), service_password=samba_ad.admin_password)
    make_sync(app).run(directory(app))
    dead = (closed_port_url(), closed_port_url())
    down = install.reopen(app, several(ldap_config(app), *dead))

    with pytest.raises(DirectoryUnavailable) as error:
        make_sync(down).run(directory(down, url=dead[0], urls=dead))
    for url in dead:
        assert f"{url}: " in str(error.value)
    assert refused(down.gate.decide(names.prefix + "00000", PASSWORD), Reason.DIRECTORY_UNAVAILABLE)
    assert seat_logins(app) == set()


# --------------------------------------------------------------------------- OpenLDAP


def test_openldap_first_server_closed_login_and_sync_use_the_second(
    openldap: OpenLDAP,
    names: UniqueNames,
    install: Installer,
    db_url: str,
    connections: list[tuple[str, str]],
) -> None:
    parent = ol_container(openldap, names)
    people = ol_add_people(openldap, parent, [names("ann"), names("ben")])
    dead = closed_port_url("ldap")
    config = several(openldap_config(openldap, tag_filter(names)), dead, openldap.url)
    app = install(db_url, config, service_password=openldap.service_password)

    report = make_sync(app).run(directory(app))
    assert report.server == openldap.url
    assert sorted(report.created) == sorted(people)
    ann = next(iter(people))
    assert app.gate.decide(ann, PASSWORD).seat_claimed
    assert (openldap.url, people[ann]) in connections
    # The sync's reader and the gate's verifier each found dc1 dead once ...
    assert [url for url, _ in connections].count(dead) == 2
    # ... and the gate remembers it: the next login goes to dc2 at once.
    connections.clear()
    assert app.gate.decide(ann, PASSWORD).allowed
    assert connections == [(openldap.url, people[ann])]


def test_openldap_silent_first_server_costs_one_timeout_then_is_remembered(
    openldap: OpenLDAP,
    names: UniqueNames,
    install: Installer,
    sqlite_url: str,
    silent_url: str,
    connections: list[tuple[str, str]],
) -> None:
    parent = ol_container(openldap, names)
    people = ol_add_people(openldap, parent, [names("cy")])
    base = openldap_config(openldap, tag_filter(names), timeout_seconds=1)
    app = install(sqlite_url, base, service_password=openldap.service_password)
    make_sync(app).run(directory(app))
    cy = next(iter(people))
    # The silent server accepts TCP (ldap3's ServerPool would call it alive)
    # and never answers StartTLS: one timeout, then it is tried last.
    hung = install.reopen(app, several(base, silent_url, openldap.url))
    connections.clear()
    for _ in range(3):
        assert hung.gate.decide(cy, PASSWORD).allowed
    assert [url for url, _ in connections].count(silent_url) == 1
    assert (openldap.url, people[cy]) in connections


def _replicate(source: OpenLDAP, target: OpenLDAP) -> None:
    """Give ``target`` exactly ``source``'s entries (same entryUUIDs), as a replica has."""
    dump = subprocess.run(
        ["slapcat", "-f", str(source.conf_file)], check=True, capture_output=True
    ).stdout
    target.stop()
    assert target.folder is not None
    data = target.folder / "data"
    shutil.rmtree(data)
    data.mkdir()
    ldif = target.folder / "replica.ldif"
    ldif.write_bytes(dump)
    subprocess.run(
        ["slapadd", "-q", "-f", str(target.conf_file), "-l", str(ldif)],
        check=True,
        capture_output=True,
    )
    target.launch()


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, directory_tls: TlsFiles
) -> Iterator[tuple[OpenLDAP, OpenLDAP]]:
    """Two slapd instances on 3892 and 3893 (same CA); tests load them with _replicate."""
    from tests.ldap.conftest import _openldap

    first = _openldap(tmp_path_factory, directory_tls, "replica-1", port=FIRST_PORT)
    second = _openldap(tmp_path_factory, directory_tls, "replica-2", port=SECOND_PORT)
    servers = (next(first), next(second))
    try:
        yield servers
    finally:
        for generator in (first, second):
            generator.close()


def test_openldap_server_stopped_in_the_middle_of_a_run(
    replicas: tuple[OpenLDAP, OpenLDAP],
    names: UniqueNames,
    install: Installer,
    db_url: str,
    connections: list[tuple[str, str]],
) -> None:
    first, second = replicas
    if not first.running:
        first.launch()
    parent = ol_container(first, names)
    people = ol_add_people(first, parent, [names(f"p{i}") for i in range(5)])
    _replicate(first, second)
    config = several(openldap_config(first, tag_filter(names), page_size=2), first.url, second.url)
    app = install(db_url, config, service_password=first.service_password)
    login = sorted(people)[0]

    # Both up: the first server answers everything.
    assert make_sync(app).run(directory(app)).server == first.url
    assert app.gate.decide(login, PASSWORD).seat_claimed
    assert {url for url, _ in connections} == {first.url}

    # The first stops after the first page of a full sync: the read starts
    # again on the second, and the run applies the second's complete answer.
    pages: list[int] = []

    def stop_first(seen: int) -> None:
        pages.append(seen)
        if len(pages) == 1:
            assert first.process is not None
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(timeout=10)

    try:
        reader = directory(app)
        reader.on_page = stop_first
        report = make_sync(app).run(reader, full=True)
        assert not first.running
        assert report.server == second.url
        assert report.entries_seen == len(people)
        assert report.created == [] and report.deleted == [] and report.disabled == []

        # Logins go on through the second server.
        connections.clear()
        assert app.gate.decide(sorted(people)[1], PASSWORD).seat_claimed
        assert {url for url, _ in connections} - {first.url} == {second.url}
        assert seat_logins(app) == set(sorted(people)[:2])
        # All down: the error names both, and says which stopped.
        second.stop()
        with pytest.raises(DirectoryUnavailable) as error:
            make_sync(app).run(directory(app))
        assert first.url in str(error.value) and second.url in str(error.value)
    finally:
        for server in (first, second):
            if not server.running:
                server.launch()

    # Back up: the first answers again, in full (its mark went with the full
    # run), and the stored mark then holds one mark per server.
    assert make_sync(app).run(directory(app)).server == first.url
    marks = json.loads(_stored(app, "ldap.mark:servers"))
    assert set(marks) == {first.url, second.url}
    # Listed second first, the second reads incrementally from its own mark.
    swapped = directory(app, url=second.url, urls=(second.url, first.url))
    again = make_sync(app).run(swapped)
    assert (again.server, again.full) == (second.url, False)
    marks = json.loads(_stored(app, "ldap.mark:servers"))
    assert set(marks) == {first.url, second.url}


def _stored(app: Any, key: str) -> str:
    from seatgate.storage import settings

    value = app.db.read(lambda conn: settings.get(conn, key))
    assert value is not None
    return str(value)
