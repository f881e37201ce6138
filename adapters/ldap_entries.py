"""Search result entries decoded to raw values only, for the sync's searches.

For every entry ldap3 builds two case-insensitive dicts: the raw values and
the values formatted per attribute type. The sync reads only the raw bytes
(:meth:`~seatgate.adapters.ldap.LdapDirectory._map` decodes the few it
needs), and building the formatted dict cost about as much as decoding the
message itself: a third of a 100,000-entry sync went there. A connection
given :func:`read_raw_entries` answers searches with entries holding
``type``, ``dn``, ``raw_dn`` and ``raw_attributes`` (a plain dict keyed by
the attribute names as the server sent them, holding only the attributes
the server sent); every other response
(results, controls, referrals, binds) is decoded by ldap3 as before.
"""

from __future__ import annotations

from typing import Any

import ldap3
from ldap3.strategy.sync import SyncStrategy
from ldap3.utils.conv import to_unicode

_SEARCH_RESULT_ENTRY = 4
"""The protocolOp tag of a SearchResultEntry (RFC 4511, section 4.5.2)."""


class _RawEntryStrategy(SyncStrategy):  # type: ignore[misc]  # ldap3 has no type hints
    """ldap3's synchronous strategy, decoding search entries to raw values only."""

    def decode_response_fast(self, ldap_message: dict[str, Any]) -> dict[str, Any]:
        if ldap_message["protocolOp"] != _SEARCH_RESULT_ENTRY:
            response: dict[str, Any] = super().decode_response_fast(ldap_message)
            return response
        # The payload as ldap3's BER decoder leaves it: (class, constructed,
        # tag, value) tuples; the entry is (objectName, attributes), each
        # attribute (type, set of values).
        name, attributes = ldap_message["payload"]
        return {
            "type": "searchResEntry",
            "raw_dn": name[3],
            # AD may send a DN that is not UTF-8: ldap3's fallbacks, as for any entry.
            "dn": to_unicode(name[3], from_server=True),
            # Names are ASCII (RFC 4512); one that is not matches no configured name.
            "raw_attributes": {
                bytes(attribute[3][0][3]).decode("utf-8", "replace"): [
                    bytes(value[3]) for value in attribute[3][1][3]
                ]
                for attribute in attributes[3]
            },
        }


def read_raw_entries(conn: ldap3.Connection) -> None:
    """Have ``conn`` decode search entries to raw values only (see the module docstring).

    Only a plain synchronous connection is changed; any other strategy (a
    test's scripted connection, ldap3's mock) is left as it is.
    """
    strategy = getattr(conn, "strategy", None)
    if type(strategy) is SyncStrategy:
        # Same state, one method more: the connection's methods bound to the
        # strategy find the override when they decode the next response.
        strategy.__class__ = _RawEntryStrategy
        # ldap3 would add every requested attribute an entry lacks, as an
        # empty list, to both dicts; an absent attribute is simply absent here.
        conn.empty_attributes = False


def attribute_values(raw: dict[str, list[bytes]] | None, name: str) -> list[bytes] | None:
    """The values of attribute ``name`` in ``raw``, whatever case the server spelled it in."""
    if not raw:
        return None
    values = raw.get(name)
    if values is not None:
        return values
    wanted = name.lower()
    return next((v for key, v in raw.items() if key.lower() == wanted), None)
