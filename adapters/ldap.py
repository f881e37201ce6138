"""Active Directory / OpenLDAP through ldap3: the sync reader and directory logins.

Transport security is never optional by accident: ldaps:// or StartTLS with
certificate validation against the configured CA; plain ldap:// only with
``insecure: true``, which logs a warning. Referrals are never followed.
Every page of a search is checked for its result code, so a size limit or a
partial result aborts the sync instead of looking like users who vanished.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from seatgate.config.ldap import LdapConfig
from seatgate.directory.model import DirectoryEntry, Snapshot
from seatgate.errors import (
    DirectoryAccountBlocked,
    DirectorySearchIncomplete,
    DirectoryUnavailable,
)
from seatgate.records import Account

from .ldap_entries import attribute_values, read_raw_entries
from .ldap_groups import NestedGroups, watched_groups_changed
from .ldap_marks import SEVERAL_SERVERS, ServerMarks
from .ldap_servers import DirectoryServers, open_connection
from .ldap_values import (
    AD_BLOCKED,
    AD_DATA,
    as_text,
    brief,
    close_quietly,
    complete_ranges,
    decoy_credentials,
    first_text,
)

log = logging.getLogger(__name__)

PAGED_RESULTS_OID = "1.2.840.113556.1.4.319"
SHOW_DELETED_OID = "1.2.840.113556.1.4.417"
UAC_ACCOUNTDISABLE = 0x2
SUCCESS = 0
INVALID_CREDENTIALS = 49
_GENERALIZED = re.compile(r"^\d{14}(\.\d+)?Z$")


class LdapDirectory:
    """One directory server: reads entries for the sync, verifies passwords by bind."""

    def __init__(self, config: LdapConfig, *, on_page: Callable[[int], None] | None = None) -> None:
        self.config = config
        self.on_page = on_page
        self.servers = DirectoryServers(config.server_urls, config.server_down_seconds)
        if config.insecure:
            log.warning(
                "ldap.insecure is true: the directory's certificate is not checked%s; "
                "use this only in a lab",
                " and passwords travel in clear text" if self._plain else "",
            )

    @property
    def server_id(self) -> str:
        """Identifies the server for its high-water mark (uSNs are per domain controller).

        With several servers the mark holds one mark per server
        (:mod:`.ldap_marks`), under one key for the whole list.
        """
        if len(self.config.server_urls) > 1:
            return SEVERAL_SERVERS
        return self.config.url.lower().rstrip("/")

    @property
    def _plain(self) -> bool:
        return not self.config.start_tls and any(
            url.lower().startswith("ldap://") for url in self.config.server_urls
        )

    # -- connections ----------------------------------------------------------

    def _connect_at(
        self, user: str, password: str, *, skip: tuple[str, ...] = ()
    ) -> tuple[str, ldap3.Connection]:
        """Open, secure and bind on the first server that answers (see :mod:`.ldap_servers`).

        Returns that server's URL and the connection, bound or not (check
        ``.bound``); raises :class:`DirectoryUnavailable` naming every server
        when none answers.
        """
        return self.servers.first_answering(
            lambda url: open_connection(self.config, url, user, password), skip=skip
        )

    def _connect(self, user: str, password: str) -> ldap3.Connection:
        return self._connect_at(user, password)[1]

    def service_connection(self) -> ldap3.Connection:
        """A connection bound as the service account. Raises DirectoryUnavailable."""
        conn = self._connect(self.config.bind_dn, self.config.bind_password())
        if not conn.bound:
            self._service_refused(conn)
        return conn

    def _service_refused(self, conn: ldap3.Connection) -> None:
        result = conn.result or {}
        close_quietly(conn)
        raise DirectoryUnavailable(
            f"the service account {self.config.bind_dn} could not bind: "
            f"{result.get('description')} {result.get('message', '')}".strip()
        )

    # -- login ------------------------------------------------------------------

    def verify(self, account: Account, password: str) -> bool:
        """Bind as the account's DN with ``password``.

        An empty or whitespace password is refused before any bind (a
        directory may treat DN + empty password as a successful anonymous
        bind). Raises :class:`DirectoryUnavailable` when the directory does
        not answer in time, :class:`DirectoryAccountBlocked` for AD's
        answers in :data:`AD_BLOCKED` (a locked-out account is plain False).
        """
        if not password or not password.strip() or not account.dn:
            return False
        conn = self._connect(account.dn, password)
        try:
            if conn.bound:
                return True
            result = conn.result or {}
            if result.get("result") == INVALID_CREDENTIALS:
                match = AD_DATA.search(str(result.get("message", "")))
                if match and match.group(1).lower() in AD_BLOCKED:
                    code = match.group(1).lower()
                    raise DirectoryAccountBlocked(code, AD_BLOCKED[code])
                return False
            log.warning(
                "directory bind for %s refused: %s", account.login, result.get("description")
            )
            return False
        finally:
            conn.unbind()

    def decoy_bind(self) -> None:
        """A bind that verifies no one, at a bind's cost (:mod:`seatgate.gate.equal_cost`)."""
        self._connect(*decoy_credentials(self.config.base_dn)).unbind()

    # -- sync -------------------------------------------------------------------

    def read(self, since: str | None) -> Snapshot:
        """Every user entry (``since`` None), or those changed after the mark ``since``.

        Read from the first server that answers; when it stops answering in
        the middle, the whole read starts again on the next one (nothing of
        the broken read is kept). The snapshot names the server it came from.
        """
        marks = ServerMarks(self.config.server_urls, since)
        stopped: list[str] = []
        while True:
            url, conn = self._connect_at(
                self.config.bind_dn, self.config.bind_password(), skip=tuple(stopped)
            )
            try:
                if not conn.bound:
                    self._service_refused(conn)
                read_raw_entries(conn)
                snapshot = self._read_from(conn, url, marks.of(url))
            except LDAPException as exc:
                # The server went away between pages (stopped, restarted,
                # network cut): nothing of this read is applied.
                self.servers.mark_down(url, f"stopped answering during the sync ({brief(exc)})")
                if len(self.config.server_urls) == 1:
                    raise DirectoryUnavailable(
                        f"{url} stopped answering during the sync ({brief(exc)}); "
                        "nothing was changed"
                    ) from None
                log.warning(
                    "%s stopped answering during the sync (%s); trying the next", url, brief(exc)
                )
                stopped.append(url)
                continue
            finally:
                close_quietly(conn)
            return replace(snapshot, mark=marks.stored_with(url, snapshot.mark), server=url)

    def _read_from(self, conn: ldap3.Connection, url: str, since: str | None) -> Snapshot:
        # The mark first: whatever changes after it is read again next time.
        mark, naming_context = self._root_dse(conn, url)
        full = (
            since is None
            or not self._valid_mark(since)
            or watched_groups_changed(conn, self.config, since)
        )
        user_filter = self.config.user_filter
        if not full and since is not None:
            user_filter = f"(&{user_filter}{self._changed_filter(since)})"
        entries = list(self._entries(conn, user_filter, url))
        if self.config.nested_groups:
            entries = NestedGroups(conn, self.config).expand(entries)
        if mark is None:
            mark = self._max_mark(entries, since)
        deleted = None
        if not full and since is not None:
            deleted = self._deleted_since(conn, since, naming_context)
        return Snapshot(
            entries=[entry for entry, _ in entries], full=full, mark=mark, deleted_ids=deleted
        )

    def _valid_mark(self, mark: str) -> bool:
        return mark.isdigit() if self.config.is_ad else bool(_GENERALIZED.match(mark))

    def _changed_filter(self, since: str) -> str:
        attr = self.config.attributes.changed
        if self.config.is_ad:
            return f"({attr}>={int(since) + 1})"
        return f"({attr}>={escape_filter_chars(since)})"

    def _root_dse(self, conn: ldap3.Connection, url: str) -> tuple[str | None, str | None]:
        """AD: the DC's highestCommittedUSN (read before the search, so nothing
        changed during it is missed) and the domain's naming context."""
        if not self.config.is_ad:
            return None, None
        conn.search(
            "",
            "(objectClass=*)",
            ldap3.BASE,
            attributes=["highestCommittedUSN", "defaultNamingContext"],
        )
        self._check(conn, "reading highestCommittedUSN", url)
        for item in conn.response or []:
            raw = item.get("raw_attributes")
            usn = first_text(attribute_values(raw, "highestCommittedUSN"))
            context = first_text(attribute_values(raw, "defaultNamingContext"))
            return (str(int(usn)) if usn else None), context
        return None, None

    def _max_mark(
        self, entries: list[tuple[DirectoryEntry, str | None]], since: str | None
    ) -> str | None:
        marks = [m for _, m in entries if m]
        if since:
            marks.append(since)
        return max(marks) if marks else None

    def _attributes(self) -> list[str]:
        a = self.config.attributes
        names = [a.login, a.name, a.email, a.groups, a.id, a.changed]
        if self.config.is_ad:
            names.append("userAccountControl")
        if self.config.disabled_attribute:
            names.append(self.config.disabled_attribute)
        return list(dict.fromkeys(names))

    def _entries(
        self, conn: ldap3.Connection, search_filter: str, url: str | None = None
    ) -> Iterator[tuple[DirectoryEntry, str | None]]:
        cookie: bytes | None = None
        seen = 0
        while True:
            conn.search(
                self.config.base_dn,
                search_filter,
                ldap3.SUBTREE,
                attributes=self._attributes(),
                paged_size=self.config.page_size,
                paged_cookie=cookie,
            )
            self._check(conn, "searching for users", url)
            for item in conn.response or []:
                if item.get("type") != "searchResEntry":
                    continue  # a referral (searchResRef): never followed
                mapped = self._map(conn, item)
                if mapped is not None:
                    seen += 1
                    yield mapped
            if self.on_page is not None:
                self.on_page(seen)
            controls = (conn.result or {}).get("controls") or {}
            cookie = controls.get(PAGED_RESULTS_OID, {}).get("value", {}).get("cookie")
            if not cookie:
                return

    def _check(self, conn: ldap3.Connection, doing: str, url: str | None) -> None:
        result = conn.result or {}
        code = result.get("result")
        if code != SUCCESS:
            raise DirectorySearchIncomplete(
                f"{doing} on {url or self.config.url} ended with {result.get('description')} "
                f"(code {code}): {str(result.get('message', '')).strip()}; the sync stopped "
                "and changed nothing"
            )

    def _map(
        self, conn: ldap3.Connection, item: dict[str, Any]
    ) -> tuple[DirectoryEntry, str | None] | None:
        a = self.config.attributes
        raw = complete_ranges(conn, item["dn"], item.get("raw_attributes", {}))
        external_id = self._external_id(raw.get(a.id.lower()) or [])
        login = first_text(raw.get(a.login.lower()))
        if external_id is None or not login:
            log.warning("skipping %s: no %s or no %s", item["dn"], a.id, a.login)
            return None
        disabled = False
        if self.config.is_ad:
            uac = first_text(raw.get("useraccountcontrol"))
            disabled = bool(uac and uac.lstrip("-").isdigit() and int(uac) & UAC_ACCOUNTDISABLE)
        if self.config.disabled_attribute:
            values = [as_text(v) for v in raw.get(self.config.disabled_attribute.lower(), [])]
            if values:
                wanted = {v.lower() for v in self.config.disabled_values}
                disabled = disabled or not wanted or any(v.lower() in wanted for v in values)
        changed = first_text(raw.get(a.changed.lower()))
        entry = DirectoryEntry(
            external_id=external_id,
            login=login,
            dn=item["dn"],
            display_name=first_text(raw.get(a.name.lower())),
            email=first_text(raw.get(a.email.lower())),
            groups=tuple(as_text(v) for v in raw.get(a.groups.lower(), [])),
            disabled=disabled,
        )
        return entry, changed

    def _external_id(self, values: list[bytes]) -> str | None:
        if not values:
            return None
        value = values[0]
        if self.config.attributes.id.lower() == "objectguid":
            if len(value) != 16:
                return None
            return str(uuid.UUID(bytes_le=bytes(value)))
        return as_text(value).lower()

    def _deleted_since(
        self, conn: ldap3.Connection, since: str, naming_context: str | None
    ) -> list[str] | None:
        """AD: ids of users deleted after the mark (Show Deleted control); None if unknown.

        Deleted objects move to ``CN=Deleted Objects`` of the domain, outside
        any OU ``base_dn`` may name, so the search starts at the domain root;
        ids of accounts seatgate does not know are ignored by the sync.
        """
        if not self.config.is_ad:
            return None
        conn.search(
            naming_context or self.config.base_dn,
            f"(&(isDeleted=TRUE)(objectClass=user)(uSNChanged>={int(since) + 1}))",
            ldap3.SUBTREE,
            attributes=["objectGUID"],
            controls=[(SHOW_DELETED_OID, True, None)],
        )
        if (conn.result or {}).get("result") != SUCCESS:
            log.warning(
                "cannot search deleted objects (%s); deletions are found by `--full` runs",
                (conn.result or {}).get("description"),
            )
            return None
        ids = []
        for item in conn.response or []:
            if item.get("type") == "searchResEntry":
                raw = item.get("raw_attributes")
                guid = self._external_id(attribute_values(raw, "objectGUID") or [])
                if guid:
                    ids.append(guid)
        return ids
