"""Nested group expansion with a scripted connection (the real servers: tests/ldap/test_groups_*).

The connection answers ``(member=DN)`` from a parent map, the way slapd
would, and counts the searches.
"""

from __future__ import annotations

import re
from dataclasses import replace
from itertools import pairwise
from typing import Any

import pytest

from seatgate.adapters.ldap_groups import MAX_NESTING_DEPTH, NestedGroups
from seatgate.config.ldap import PRESETS, LdapConfig
from seatgate.directory.model import DirectoryEntry
from seatgate.errors import DirectorySearchIncomplete

_MEMBER = re.compile(r"^\(member=(.*)\)$")


class GroupTree:
    """Answers searches for the groups whose ``member`` is a DN."""

    def __init__(self, parents: dict[str, list[str]], *, fail: bool = False) -> None:
        self.parents = parents
        self.fail = fail
        self.filters: list[str] = []
        self.result: dict[str, Any] = {}
        self.response: list[dict[str, Any]] = []

    def search(self, base: str, search_filter: str, scope: Any, **_: Any) -> None:
        self.filters.append(search_filter)
        if self.fail:
            self.result = {"result": 4, "description": "sizeLimitExceeded"}
            self.response = []
            return
        match = _MEMBER.match(search_filter)
        child = match.group(1) if match else ""
        self.result = {"result": 0}
        self.response = [{"type": "searchResEntry", "dn": dn} for dn in self.parents.get(child, [])]


def openldap() -> LdapConfig:
    _, attributes = PRESETS["openldap"]
    return LdapConfig(
        url="ldaps://x",
        base_dn="dc=x",
        bind_dn="cn=s,dc=x",
        preset="openldap",
        attributes=attributes,
        nested_groups=True,
    )


def entry(*groups: str) -> DirectoryEntry:
    return DirectoryEntry(external_id="1", login="ana", dn="uid=ana,dc=x", groups=groups)


def test_a_cycle_ends_the_walk_and_each_group_is_asked_once() -> None:
    tree = GroupTree({"cn=a": ["cn=b"], "cn=b": ["cn=c", "cn=a"], "cn=c": ["cn=a"]})
    expander = NestedGroups(tree, openldap())  # type: ignore[arg-type]
    [(first, _), (second, _)] = expander.expand([(entry("cn=a"), None), (entry("cn=b"), None)])
    assert first.groups == ("cn=a", "cn=b", "cn=c")
    assert set(second.groups) == {"cn=a", "cn=b", "cn=c"}
    assert sorted(tree.filters) == ["(member=cn=a)", "(member=cn=b)", "(member=cn=c)"]


def test_the_walk_stops_at_the_depth_bound() -> None:
    chain = [f"cn=g{i}" for i in range(MAX_NESTING_DEPTH + 3)]
    tree = GroupTree({child: [parent] for child, parent in pairwise(chain)})
    [(expanded, _)] = NestedGroups(tree, openldap()).expand([(entry(chain[0]), None)])  # type: ignore[arg-type]
    assert expanded.groups == tuple(chain[: MAX_NESTING_DEPTH + 1])


def test_ad_asks_the_domain_controller_for_the_whole_chain_with_escaped_dns() -> None:
    tree = GroupTree({})
    config = replace(openldap(), preset="ad", group_base_dn="OU=Groups,DC=x")
    NestedGroups(tree, config).above("CN=Sales (EU)\\, Madrid,DC=x")  # type: ignore[arg-type]
    assert tree.filters == [
        "(&(objectClass=group)(member:1.2.840.113556.1.4.1941:="
        "CN=Sales \\28EU\\29\\5c, Madrid,DC=x))"
    ]


def test_a_failed_group_search_stops_the_sync() -> None:
    with pytest.raises(DirectorySearchIncomplete, match="changed nothing"):
        NestedGroups(GroupTree({}, fail=True), openldap()).above("cn=a")  # type: ignore[arg-type]
