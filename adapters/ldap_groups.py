"""Nested group memberships for the sync (``ldap.nested_groups: true``).

An entry's ``memberOf`` names only the groups it is directly in. With
nested groups on, the sync adds every group that contains one of those,
at any depth, so that seat groups, admin groups and the groups passed to
the portal see a user of a group inside a group.

- Active Directory answers the whole chain in one search per direct group
  with the in-chain matching rule (LDAP_MATCHING_RULE_IN_CHAIN,
  1.2.840.113556.1.4.1941): the groups whose ``member`` contains the group,
  transitively. AD itself walks the chain and copes with cycles.
- OpenLDAP has no such rule: the groups whose ``member`` is the group are
  looked up level by level, at most :data:`MAX_NESTING_DEPTH` levels, and a
  group already seen is never looked up again, so a cycle ends the walk.

Groups are looked for under ``ldap.group_base_dn`` (default ``base_dn``).
Each group's parents are asked once per sync, however many users share it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace

import ldap3
from ldap3.utils.conv import escape_filter_chars

from seatgate.config.ldap import LdapConfig
from seatgate.directory.model import DirectoryEntry
from seatgate.errors import DirectorySearchIncomplete

from .ldap_entries import attribute_values
from .ldap_values import first_text

log = logging.getLogger(__name__)

IN_CHAIN = "1.2.840.113556.1.4.1941"
MAX_NESTING_DEPTH = 10
"""Levels of groups above a user's own groups that OpenLDAP expansion follows.
A constant, not a setting: deeper nesting is a directory design problem, and
the bound only exists so that a runaway structure cannot stall the sync."""
SUCCESS = 0
SIZE_LIMIT_EXCEEDED = 4

Marked = tuple[DirectoryEntry, str | None]


class NestedGroups:
    """Every group above a group, asked of the directory once per group per sync."""

    def __init__(self, conn: ldap3.Connection, config: LdapConfig) -> None:
        self.conn = conn
        self.config = config
        self.base = config.group_base_dn or config.base_dn
        self._above: dict[str, tuple[str, ...]] = {}
        self._parents: dict[str, tuple[str, ...]] = {}

    def expand(self, entries: Iterable[Marked]) -> list[Marked]:
        """The entries with every group above their own added (own groups first)."""
        expanded: list[Marked] = []
        for entry, mark in entries:
            groups = {group.lower(): group for group in entry.groups}
            for group in entry.groups:
                for above in self.above(group):
                    groups.setdefault(above.lower(), above)
            expanded.append((replace(entry, groups=tuple(groups.values())), mark))
        return expanded

    def above(self, group: str) -> tuple[str, ...]:
        """Every group that contains ``group``, directly or through other groups."""
        key = group.lower()
        found = self._above.get(key)
        if found is None:
            found = self._in_chain(group) if self.config.is_ad else self._level_by_level(group)
            self._above[key] = found
        return found

    def _in_chain(self, group: str) -> tuple[str, ...]:
        dn = escape_filter_chars(group)
        return self._search(f"(&(objectClass=group)(member:{IN_CHAIN}:={dn}))")

    def _level_by_level(self, group: str) -> tuple[str, ...]:
        seen = {group.lower()}
        found: list[str] = []
        level = [group]
        for _ in range(MAX_NESTING_DEPTH):
            upper: list[str] = []
            for child in level:
                for parent in self._parents_of(child):
                    if parent.lower() not in seen:
                        seen.add(parent.lower())
                        upper.append(parent)
            if not upper:
                return tuple(found)
            found.extend(upper)
            level = upper
        log.warning(
            "group nesting above %s is deeper than %d levels; the groups further up are "
            "not counted",
            group,
            MAX_NESTING_DEPTH,
        )
        return tuple(found)

    def _parents_of(self, dn: str) -> tuple[str, ...]:
        key = dn.lower()
        parents = self._parents.get(key)
        if parents is None:
            parents = self._search(f"(member={escape_filter_chars(dn)})")
            self._parents[key] = parents
        return parents

    def _search(self, search_filter: str) -> tuple[str, ...]:
        self.conn.search(
            self.base,
            search_filter,
            ldap3.SUBTREE,
            attributes=[ldap3.NO_ATTRIBUTES],
        )
        result = self.conn.result or {}
        if result.get("result") != SUCCESS:
            # A partial answer would drop a group: a seat or admin right lost by accident.
            raise DirectorySearchIncomplete(
                f"searching nested groups under {self.base} ended with "
                f"{result.get('description')} (code {result.get('result')}); the sync "
                "stopped and changed nothing"
            )
        return tuple(
            item["dn"] for item in self.conn.response or [] if item.get("type") == "searchResEntry"
        )


def watched_groups_changed(conn: ldap3.Connection, config: LdapConfig, since: str | None) -> bool:
    """Whether a seat or admin group (any group, with nested groups) changed after the mark.

    Adding a member changes the group entry, not the user's uSNChanged or
    modifyTimestamp, so an incremental search alone would miss it; then
    the run reads everything instead.
    """
    if since is None:
        return False
    if config.nested_groups:
        return groups_changed_since(conn, config, since)
    attr = config.attributes.changed
    for group in (*config.seat_groups, *config.admin_groups):
        conn.search(group, "(objectClass=*)", ldap3.BASE, attributes=[attr])
        if (conn.result or {}).get("result") != SUCCESS:
            log.warning("cannot read group %s; reading every entry", group)
            return True
        for item in conn.response or []:
            stamp = first_text(attribute_values(item.get("raw_attributes"), attr))
            if stamp is None:
                return True
            newer = int(stamp) > int(since) if config.is_ad else stamp >= since
            if newer:
                return True
    return False


def groups_changed_since(conn: ldap3.Connection, config: LdapConfig, since: str) -> bool:
    """Whether any group under the group base changed after the mark ``since``.

    A user added to a group three levels below a seat group changes neither
    the user's entry nor the seat group, so with nested groups an
    incremental run must look at every group; one changed means a full run.
    """
    if config.is_ad:
        search_filter = f"(&(objectClass=group)(uSNChanged>={int(since) + 1}))"
    else:
        search_filter = (
            "(&(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))"
            f"(modifyTimestamp>={escape_filter_chars(since)}))"
        )
    conn.search(
        config.group_base_dn or config.base_dn,
        search_filter,
        ldap3.SUBTREE,
        attributes=[ldap3.NO_ATTRIBUTES],
        size_limit=1,
    )
    code = (conn.result or {}).get("result")
    if code not in (SUCCESS, SIZE_LIMIT_EXCEEDED):
        log.warning("cannot tell whether groups changed (code %s); reading every entry", code)
        return True
    return code == SIZE_LIMIT_EXCEEDED or any(
        item.get("type") == "searchResEntry" for item in conn.response or []
    )
