"""Search entries decoded to raw values only, against messages BER-encoded as a server sends them.

The sync's connection decodes SearchResultEntry messages itself
(:mod:`seatgate.adapters.ldap_entries`); these tests compare it with ldap3's
own decoding of the same bytes, and check what it leaves alone.
"""

from __future__ import annotations

import socket
from typing import Any

import ldap3
from ldap3.protocol.rfc4511 import (
    LDAPDN,
    AttributeDescription,
    AttributeValue,
    LDAPMessage,
    LDAPString,
    MessageID,
    PartialAttribute,
    PartialAttributeList,
    ProtocolOp,
    ResultCode,
    SearchResultDone,
    SearchResultEntry,
    Vals,
)
from ldap3.strategy.sync import SyncStrategy
from ldap3.utils.asn1 import decode_message_fast, encode

from seatgate.adapters.ldap_entries import attribute_values, read_raw_entries
from seatgate.adapters.ldap_values import send_at_once

GUID = bytes(range(16))
ATTRIBUTES = [
    ("uid", [b"p0000001"]),
    ("cn", ["Zoë Ångström".encode()]),
    ("memberOf", [b"cn=a,ou=groups,dc=seatgate,dc=test", b"cn=b,ou=groups,dc=seatgate,dc=test"]),
    ("objectGUID", [GUID]),
    ("member;range=0-1499", [b"cn=x", b"cn=y"]),
]


def entry_message(dn: str, attributes: list[tuple[str, list[bytes]]]) -> dict[str, Any]:
    """A SearchResultEntry as the server's bytes, through ldap3's BER decoder."""
    entry = SearchResultEntry()
    entry["object"] = LDAPDN(dn)
    attribute_list = PartialAttributeList()
    for position, (name, values) in enumerate(attributes):
        attribute = PartialAttribute()
        attribute["type"] = AttributeDescription(name)
        vals = Vals()
        for index, value in enumerate(values):
            vals.setComponentByPosition(index, AttributeValue(value))
        attribute["vals"] = vals
        attribute_list.setComponentByPosition(position, attribute)
    entry["attributes"] = attribute_list
    operation = ProtocolOp()
    operation.setComponentByName("searchResEntry", entry)
    message = LDAPMessage()
    message["messageID"] = MessageID(7)
    message["protocolOp"] = operation
    decoded: dict[str, Any] = decode_message_fast(encode(message))
    return decoded


def unopened() -> ldap3.Connection:
    return ldap3.Connection(ldap3.Server("ldap://127.0.0.1:9"), lazy=True)


def test_an_entry_decodes_to_the_raw_values_ldap3_would_give() -> None:
    message = entry_message("uid=p0000001,ou=people,dc=seatgate,dc=test", ATTRIBUTES)
    plain = unopened()
    expected = plain.strategy.decode_response_fast(message)
    conn = unopened()
    read_raw_entries(conn)
    raw = conn.strategy.decode_response_fast(message)

    assert raw["type"] == "searchResEntry"
    assert raw["dn"] == expected["dn"] == "uid=p0000001,ou=people,dc=seatgate,dc=test"
    assert raw["raw_dn"] == expected["raw_dn"]
    assert raw["raw_attributes"] == dict(expected["raw_attributes"])
    assert raw["raw_attributes"]["objectGUID"] == [GUID]
    assert type(raw["raw_attributes"]) is dict  # no case-insensitive dict to build
    assert "attributes" not in raw  # no formatted values to build either


def test_a_dn_that_is_not_utf8_falls_back_as_ldap3_does() -> None:
    message = entry_message("uid=x,dc=test", [("uid", [b"x"])])
    name = message["payload"][0]
    message["payload"][0] = (*name[:3], "uid=Müller,dc=test".encode("latin-1"))
    conn = unopened()
    read_raw_entries(conn)
    assert conn.strategy.decode_response_fast(message)["dn"] == "uid=Müller,dc=test"


def test_other_messages_are_left_to_ldap3() -> None:
    result = SearchResultDone()
    result["resultCode"] = ResultCode(4)
    result["matchedDN"] = LDAPDN("")
    result["diagnosticMessage"] = LDAPString("size limit exceeded")
    operation = ProtocolOp()
    operation.setComponentByName("searchResDone", result)
    message = LDAPMessage()
    message["messageID"] = MessageID(7)
    message["protocolOp"] = operation
    decoded = decode_message_fast(encode(message))
    conn = unopened()
    read_raw_entries(conn)
    assert conn.strategy.decode_response_fast(decoded) == unopened().strategy.decode_response_fast(
        decoded
    )
    assert conn.strategy.decode_response_fast(decoded)["result"] == 4
    assert isinstance(conn.strategy, SyncStrategy)
    assert conn.empty_attributes is False


def test_only_a_plain_synchronous_connection_is_changed() -> None:
    mock = ldap3.Connection(ldap3.Server("fake"), client_strategy=ldap3.MOCK_SYNC)
    kind = type(mock.strategy)
    read_raw_entries(mock)
    assert type(mock.strategy) is kind
    assert mock.empty_attributes is True

    class Scripted:
        strategy = None

    read_raw_entries(Scripted())  # type: ignore[arg-type]  # nothing to change, no error


def test_attribute_values_ignore_the_case_the_server_spelled_a_name_in() -> None:
    raw = {"highestCommittedUSN": [b"12"], "objectGUID": [GUID]}
    assert attribute_values(raw, "highestCommittedUSN") == [b"12"]
    assert attribute_values(raw, "highestcommittedusn") == [b"12"]
    assert attribute_values(raw, "OBJECTGUID") == [GUID]
    assert attribute_values(raw, "uSNChanged") is None
    assert attribute_values(None, "objectGUID") is None
    assert attribute_values({}, "objectGUID") is None


def test_a_directory_connection_sends_without_nagles_delay() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        try:

            class Opened:
                socket = client

            assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
            send_at_once(Opened())  # type: ignore[arg-type]
            assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            client.close()


def test_a_socket_that_is_not_tcp_is_left_alone() -> None:
    left, right = socket.socketpair()
    try:

        class Local:
            socket = left

        send_at_once(Local())  # type: ignore[arg-type]  # no error: AF_UNIX has no Nagle

        class Closed:
            socket = None

        send_at_once(Closed())  # type: ignore[arg-type]
        left.sendall(b"still works")
        assert right.recv(16) == b"still works"
    finally:
        left.close()
        right.close()
