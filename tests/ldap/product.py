"""Helpers for the product tests against the real directory servers.

An installation with an ``ldap:`` section (:class:`Installer`), the sync and
the reader built the way ``seatgate sync ldap`` builds them, per-test scopes on
the shared servers (an OU per test on Samba, a name tag in the filter on
OpenLDAP), and a snapshot of everything a sync may write, to show that a
refused sync changed nothing.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest
from ldap3 import BASE, MODIFY_REPLACE, SUBTREE
from ldap3.utils.dn import escape_rdn
from sqlalchemy import select

from seatgate.adapters.ldap import LdapDirectory
from seatgate.app import Core
from seatgate.clock import FakeClock
from seatgate.config.ldap import PRESETS, LdapConfig
from seatgate.directory.sync import DirectorySync
from seatgate.gate.decision import Decision, Reason
from seatgate.licensing.vendor import VendorKey
from seatgate.storage import settings as stored_settings
from seatgate.storage.schema import accounts, audit_events, seats, settings
from tests.conftest import make_config
from tests.ldap.conftest import UniqueNames
from tests.ldap.servers import OpenLDAP, SambaAD, ssha

# The variable the test installations read the service password from.
PASSWORD_ENV = "SEATGATE_TEST_LDAP_PASSWORD"
# Every test user has this password: a login that reached the wrong entry would bind.
PASSWORD = "Bulk-pw-1"
AD_PAGED = "1.2.840.113556.1.4.319"


# --------------------------------------------------------------------------- configs


def samba_config(
    samba: SambaAD,
    base_dn: str,
    *,
    transport: str = "ldaps",
    ca_file: Any = None,
    **options: Any,
) -> LdapConfig:
    """The AD preset against the Samba DC: LDAPS on 636 or StartTLS on 389, CA validated."""
    if transport not in ("ldaps", "starttls"):
        raise ValueError(transport)
    default_filter, attributes = PRESETS["ad"]
    settings: dict[str, Any] = {"user_filter": default_filter, "attributes": attributes}
    settings.update(options)
    return LdapConfig(
        url=samba.url_ldaps if transport == "ldaps" else samba.url_starttls,
        base_dn=base_dn,
        bind_dn=samba.admin_dn,
        bind_password_env=PASSWORD_ENV,
        start_tls=transport == "starttls",
        ca_file=ca_file or samba.ca_file,
        preset="ad",
        **settings,
    )


def openldap_config(
    server: OpenLDAP, user_filter: str, *, ca_file: Any = None, **options: Any
) -> LdapConfig:
    """The OpenLDAP preset over StartTLS with the test CA, as the read-only service account."""
    _, attributes = PRESETS["openldap"]
    settings: dict[str, Any] = {"base_dn": server.base_dn, "attributes": attributes}
    settings.update(options)
    return LdapConfig(
        url=server.url,
        bind_dn=server.service_dn,
        bind_password_env=PASSWORD_ENV,
        start_tls=True,
        ca_file=ca_file or server.ca_file,
        preset="openldap",
        user_filter=user_filter,
        **settings,
    )


def tag_filter(names: UniqueNames, extra: str = "") -> str:
    """inetOrgPersons whose uid carries this test's tag (names(...) and names.prefix both do)."""
    return f"(&(objectClass=inetOrgPerson)(uid=*{names.tag}*){extra})"


# --------------------------------------------------------------------------- installations


class Installer:
    """Builds initialised installations with an ``ldap:`` section (and a licence)."""

    def __init__(
        self,
        vendor_key: VendorKey,
        clock: FakeClock,
        mint: Callable[..., str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        self.vendor_key = vendor_key
        self.clock = clock
        self.mint = mint
        self.monkeypatch = monkeypatch
        self.built: list[Core] = []

    def __call__(
        self,
        url: str,
        ldap: LdapConfig,
        *,
        service_password: str,
        seats: int | None = 25,
        **options: Any,
    ) -> Core:
        """``seats``: install a licence with that many seats (None: no licence)."""
        self.monkeypatch.setenv(ldap.bind_password_env, service_password)
        config = replace(make_config(url, self.vendor_key, **options), ldap=ldap)
        app = Core.build(config, clock=self.clock, check_schema=False)
        self.built.append(app)
        app.init_schema()
        if seats is not None:
            app.licensing.install(self.mint("license", seats=seats), actor="test")
        return app

    def reopen(self, app: Core, ldap: LdapConfig) -> Core:
        """A second installation object on the same database, with another ``ldap:`` section."""
        other = Core.build(replace(app.config, ldap=ldap), clock=self.clock)
        self.built.append(other)
        return other

    def close(self) -> None:
        for app in self.built:
            app.close()


def ldap_config(app: Core) -> LdapConfig:
    assert app.config.ldap is not None
    return app.config.ldap


def make_sync(app: Core, **overrides: Any) -> DirectorySync:
    """The sync as ``seatgate sync ldap`` builds it from the ``ldap:`` section."""
    config = ldap_config(app)
    options: dict[str, Any] = {
        "max_disable_ratio": config.max_disable_ratio,
        "max_disable_count": config.max_disable_count,
        "seat_groups": config.seat_groups,
        "seat_groups_mode": config.seat_groups_mode,
        "admin_groups": config.admin_groups,
    }
    options.update(overrides)
    return DirectorySync(app.db, app.clock, app.ledger, **options)


def reader(app: Core, **changes: Any) -> LdapDirectory:
    """The ldap3 reader for the installation's ``ldap:`` section (fields replaced by changes)."""
    return LdapDirectory(replace(ldap_config(app), **changes))


def stored_mark(app: Core) -> str | None:
    """The high-water mark the last applied sync stored for this server."""
    key = f"ldap.mark:{reader(app).server_id}"
    return app.db.read(lambda conn: stored_settings.get(conn, key))


# --------------------------------------------------------------------------- database views


def snapshot(app: Core) -> dict[str, Any]:
    """Every row a sync may write: accounts, seats, settings (marks) and the audit log."""

    def read(conn: Any) -> dict[str, Any]:
        return {
            name: [dict(row._mapping) for row in conn.execute(select(table).order_by(*order))]
            for name, table, order in (
                ("accounts", accounts, [accounts.c.id]),
                ("seats", seats, [seats.c.account_id]),
                ("settings", settings, [settings.c.key]),
                ("audit", audit_events, [audit_events.c.id]),
            )
        }

    return app.db.read(read)


def directory_rows(app: Core) -> dict[str, dict[str, Any]]:
    """Directory accounts by external id (every status: rows are never removed)."""
    query = select(accounts).where(accounts.c.source == "ldap")
    return app.db.read(
        lambda conn: {row.external_id: dict(row._mapping) for row in conn.execute(query)}
    )


def seat_logins(app: Core) -> set[str]:
    return {holder.login for holder in app.ledger.holders()}


def refused(decision: Decision, reason: Reason) -> bool:
    """The login was refused for exactly this reason, and nothing was claimed."""
    return not decision.allowed and decision.reason is reason and not decision.seat_claimed


# --------------------------------------------------------------------------- Samba AD


def ad_ou(samba: SambaAD, names: UniqueNames) -> str:
    """A fresh OU directly under the domain, for one test's users and groups."""
    dn = f"OU={names('ou')},{samba.base_dn}"
    conn = samba.connect()
    try:
        conn.add(dn, "organizationalUnit")
    finally:
        conn.unbind()
    return dn


def ad_bulk(samba: SambaAD, ou_dn: str, prefix: str, count: int) -> dict[str, str]:
    """``count`` enabled users with PASSWORD in ``ou_dn``: {sAMAccountName: DN}."""
    created = samba.create_users_bulk(prefix, count, PASSWORD, ou_dn=ou_dn)
    return {name: f"CN={name},{ou_dn}" for name in created}


def ad_guids(samba: SambaAD, base_dn: str) -> dict[str, str]:
    """{sAMAccountName: objectGUID as a UUID string} of every user under base_dn (paged)."""
    conn = samba.connect()
    found: dict[str, str] = {}
    cookie: bytes | None = None
    try:
        while True:
            conn.search(
                base_dn,
                SambaAD.person_filter,
                SUBTREE,
                attributes=["sAMAccountName", "objectGUID"],
                paged_size=500,
                paged_cookie=cookie,
            )
            for item in conn.response:
                if item.get("type") == "searchResEntry":
                    raw = item["raw_attributes"]
                    name = raw["sAMAccountName"][0].decode()
                    found[name] = str(uuid.UUID(bytes_le=bytes(raw["objectGUID"][0])))
            cookie = conn.result["controls"][AD_PAGED]["value"]["cookie"]
            if not cookie:
                return found
    finally:
        conn.unbind()


def ad_modify(samba: SambaAD, changes: Mapping[str, Mapping[str, Any]]) -> None:
    """Replace attributes of several entries over one Administrator connection: {dn: {attr: v}}."""
    conn = samba.connect()
    try:
        for dn, attributes in changes.items():
            conn.modify(dn, {a: [(MODIFY_REPLACE, [v])] for a, v in attributes.items()})
    finally:
        conn.unbind()


def ad_set_disabled(samba: SambaAD, dns: Iterable[str], disabled: bool = True) -> None:
    """userAccountControl 514 (disabled) or 512 over LDAP: what an admin tool writes."""
    ad_modify(samba, {dn: {"userAccountControl": "514" if disabled else "512"} for dn in dns})


def ad_group(samba: SambaAD, ou_dn: str, name: str, members: Sequence[str]) -> str:
    """A global security group in ou_dn with these member DNs; returns its DN."""
    dn = f"CN={name},{ou_dn}"
    conn = samba.connect()
    try:
        conn.add(dn, ["top", "group"], {"sAMAccountName": name, "member": list(members)})
    finally:
        conn.unbind()
    return dn


def ad_usn(samba: SambaAD) -> int:
    """The DC's highestCommittedUSN now."""
    conn = samba.connect()
    try:
        conn.search("", "(objectClass=*)", BASE, attributes=["highestCommittedUSN"])
        return int(conn.response[0]["raw_attributes"]["highestCommittedUSN"][0])
    finally:
        conn.unbind()


# --------------------------------------------------------------------------- OpenLDAP


def ol_container(server: OpenLDAP, names: UniqueNames) -> str:
    """A fresh o=... directly under the suffix, for one test's entries.

    An organization, not an organizationalUnit: the server fixture's own tests
    count the OUs under the suffix.
    """
    name = names("org")
    dn = f"o={name},{server.base_dn}"
    conn = server.connect()
    try:
        conn.add(dn, "organization", {"o": name})
    finally:
        conn.unbind()
    return dn


def ol_add_people(server: OpenLDAP, parent_dn: str, uids: Sequence[str]) -> dict[str, str]:
    """inetOrgPersons uid=...,parent_dn with PASSWORD: {uid: DN}."""
    added: dict[str, str] = {}
    conn = server.connect()
    try:
        for uid in uids:
            dn = f"uid={_rdn_value(uid)},{parent_dn}"
            attributes = {"uid": uid, "cn": uid, "sn": uid, "userPassword": ssha(PASSWORD)}
            conn.add(dn, ["inetOrgPerson"], attributes)
            added[uid] = dn
    finally:
        conn.unbind()
    return added


def _rdn_value(value: str) -> str:
    return str(escape_rdn(value))


def ol_read(server: OpenLDAP, search_filter: str, attributes: Sequence[str]) -> list[Any]:
    """Entries under the suffix matching the filter, read as the (unlimited) rootdn."""
    conn = server.connect()
    try:
        conn.search(server.base_dn, search_filter, SUBTREE, attributes=list(attributes))
        return list(conn.entries)
    finally:
        conn.unbind()


def ol_uuids(server: OpenLDAP, search_filter: str) -> dict[str, str]:
    """{uid: entryUUID} of the entries matching the filter."""
    return {
        e.uid.value: str(e.entryUUID.value).lower()
        for e in ol_read(server, search_filter, ["uid", "entryUUID"])
    }


def ol_timestamps(server: OpenLDAP, search_filter: str) -> dict[str, str]:
    """{uid: modifyTimestamp as the server writes it (YYYYMMDDhhmmssZ)}."""
    return {
        e.uid.value: e.modifyTimestamp.raw_values[0].decode()
        for e in ol_read(server, search_filter, ["uid", "modifyTimestamp"])
    }


def next_second() -> None:
    """Sleep into the next wall-clock second: later writes get a later modifyTimestamp."""
    now = time.time()
    time.sleep(math.floor(now) + 1 - now + 0.02)
