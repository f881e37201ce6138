"""A real OpenLDAP slapd on loopback holding many generated people, for the benchmarks.

The server is the tests' :class:`tests.ldap.servers.OpenLDAP` (same slapd.conf,
indexes, service account and StartTLS test CA). The people are written to an
LDIF file and loaded with ``slapadd`` while slapd is stopped, which takes
seconds where adding them over the protocol would take minutes.

Every person carries explicit ``createTimestamp``/``modifyTimestamp`` values
spread one minute apart in the past, like a directory that grew over time;
left to slapadd, tens of thousands of entries would share the last second of
the load, and every incremental sync would re-read them as "changed in the
mark's second".
"""

from __future__ import annotations

import datetime
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ldap3 import MODIFY_REPLACE

from tests.ldap.servers import DirectoryServerError, OpenLDAP, _binary, _run

GROUPS = 20
"""Groups ``ou=groups``; every person belongs to two of them (``memberOf``)."""
FIRST_STAMP = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
RESERVED_PORTS = frozenset({3890, 3891})
"""The tests' slapd ports: the benchmark never takes them."""
SERVICE_PASSWORD_ENV = "SEATGATE_BENCH_LDAP_PASSWORD"  # noqa: S105 - a variable name


def uid_of(index: int) -> str:
    """The uid of person number ``index`` (0-based)."""
    return f"p{index:07d}"


def group_cn(number: int) -> str:
    return f"bench-g{number:02d}"


def groups_of(index: int) -> tuple[int, int]:
    """The two group numbers person ``index`` belongs to (always distinct)."""
    first = index % GROUPS
    return first, (first + 1 + (index // GROUPS) % (GROUPS - 1)) % GROUPS


def _generalized(at: datetime.datetime) -> str:
    return at.strftime("%Y%m%d%H%M%SZ")


def write_people_ldif(path: Path, server: OpenLDAP, count: int) -> None:
    """``count`` inetOrgPersons under ou=people and the groups they belong to, as LDIF."""
    members: list[list[str]] = [[] for _ in range(GROUPS)]
    group_dns = [server.group_dn(group_cn(n)) for n in range(GROUPS)]
    with path.open("w", encoding="utf-8") as out:
        for index in range(count):
            uid = uid_of(index)
            dn = server.user_dn(uid)
            stamp = _generalized(FIRST_STAMP + datetime.timedelta(minutes=index))
            lines = [
                f"dn: {dn}",
                "objectClass: inetOrgPerson",
                f"uid: {uid}",
                f"cn: Person {index:07d}",
                f"sn: {index:07d}",
                f"mail: {uid}@example.com",
            ]
            for group in groups_of(index):
                members[group].append(dn)
                lines.append(f"memberOf: {group_dns[group]}")
            lines += [f"createTimestamp: {stamp}", f"modifyTimestamp: {stamp}", "", ""]
            out.write("\n".join(lines))
        stamp = _generalized(FIRST_STAMP)
        for number, dn in enumerate(group_dns):
            out.write(
                f"dn: {dn}\nobjectClass: groupOfNames\ncn: {group_cn(number)}\n"
                + "".join(f"member: {member}\n" for member in members[number])
                + f"createTimestamp: {stamp}\nmodifyTimestamp: {stamp}\n\n"
            )


def free_port() -> int:
    """A TCP port free on loopback right now, never one of the tests' ports."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((OpenLDAP.host, 0))
            port = int(sock.getsockname()[1])
        if port not in RESERVED_PORTS:
            return port


class PeopleDirectory(OpenLDAP):
    """The tests' slapd, plus ``count`` generated people loaded with slapadd."""

    def start_with_people(self, folder: Path, count: int, *, port: int | None = None) -> None:
        """Start slapd in ``folder`` (base entries), stop it, slapadd the people, start again."""
        self.start(folder, port or free_port(), size_limit=1000, paged_exempt=True)
        self.stop()
        ldif = folder / "people.ldif"
        write_people_ldif(ldif, self, count)
        slapadd = _binary("slapadd")
        _run([slapadd, "-q", "-f", str(self.conf_file), "-l", str(ldif)], what="slapadd people")
        ldif.unlink()
        self.launch(30.0)

    def change_names(self, uids: Sequence[str], tag: str) -> None:
        """Replace the ``cn`` of each of ``uids`` over one rootdn connection."""
        conn = self.connect()
        try:
            for uid in uids:
                new_name = f"Person {uid} {tag}"
                if not conn.modify(self.user_dn(uid), {"cn": [(MODIFY_REPLACE, [new_name])]}):
                    raise DirectoryServerError(f"modify {uid} failed: {conn.result}")
        finally:
            conn.unbind()

    def seatgate_ldap_section(self) -> dict[str, Any]:
        """The ``ldap:`` section an installation syncing from this server would have."""
        return {
            "url": self.url,
            "start_tls": True,
            "ca_file": str(self.ca_file),
            "bind_dn": self.service_dn,
            "bind_password_env": SERVICE_PASSWORD_ENV,
            "base_dn": self.base_dn,
            "preset": "openldap",
        }


def wait_for_next_second() -> None:
    """Sleep past the next whole second (modifyTimestamp has one-second resolution)."""
    now = time.time()
    time.sleep(int(now) + 1 - now + 0.05)


def environment() -> dict[str, str]:
    """The environment of the benchmark's child processes: the service password set."""
    return dict(os.environ, **{SERVICE_PASSWORD_ENV: OpenLDAP.service_password})
