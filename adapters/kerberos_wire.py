"""What ``seatgate doctor kerberos`` reads without a ticket: the keytab file, and the KDC's clock.

A keytab is MIT's binary format (version 0x502): entries of principal, key
version and encryption type, read here to say what the file holds. The
KDC's clock is read from its answer to an initial-ticket request
(``AS-REQ``) for the service principal: whatever that answer is -- usually
an error, since nobody proves a key -- a KDC stamps every reply with its own
time (RFC 4120, KRB-ERROR ``stime``), which is all the check needs. Nothing
secret is sent or read.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

KDC_PORT = 88
# RFC 3961/8009 encryption type numbers and names.
ENCTYPES = {
    1: "des-cbc-crc",
    3: "des-cbc-md5",
    16: "des3-cbc-sha1",
    17: "aes128-cts-hmac-sha1-96",
    18: "aes256-cts-hmac-sha1-96",
    19: "aes128-cts-hmac-sha256-128",
    20: "aes256-cts-hmac-sha384-192",
    23: "rc4-hmac",
}
STRONG_ENCTYPES = frozenset({17, 18, 19, 20})


class KeytabError(ValueError):
    """The file is not a keytab this reader understands."""


@dataclass(frozen=True)
class KeytabEntry:
    """One key of a keytab (the key itself is never kept)."""

    principal: str
    kvno: int
    enctype: int

    @property
    def enctype_name(self) -> str:
        return ENCTYPES.get(self.enctype, f"enctype {self.enctype}")


def read_keytab(path: Path) -> list[KeytabEntry]:
    """The entries of the keytab at ``path``. Raises :class:`KeytabError` or :class:`OSError`."""
    data = path.read_bytes()
    if data[:2] != b"\x05\x02":
        raise KeytabError("not an MIT keytab (version 0x502)")
    entries: list[KeytabEntry] = []
    pos = 2
    try:
        while pos + 4 <= len(data):
            (size,) = struct.unpack_from(">i", data, pos)
            pos += 4
            if size <= 0:  # a hole left by a removed entry
                pos += -size
                continue
            entries.append(_entry(data[pos : pos + size]))
            pos += size
    except struct.error:
        raise KeytabError("the file ends inside an entry") from None
    return entries


def _entry(record: bytes) -> KeytabEntry:
    (count,) = struct.unpack_from(">H", record, 0)
    pos = 2
    parts: list[str] = []
    for _ in range(count + 1):  # the realm, then the name's components
        (length,) = struct.unpack_from(">H", record, pos)
        parts.append(record[pos + 2 : pos + 2 + length].decode("utf-8", "replace"))
        pos += 2 + length
    pos += 4 + 4  # name type, timestamp
    (kvno8, enctype, key_length) = struct.unpack_from(">BHH", record, pos)
    pos += 5 + key_length
    # A 32-bit key version follows when there is room (the 8-bit one wraps).
    kvno = struct.unpack_from(">I", record, pos)[0] if len(record) >= pos + 4 else kvno8
    realm, names = parts[0], parts[1:]
    return KeytabEntry(principal="/".join(names) + "@" + realm, kvno=kvno, enctype=enctype)


def kdcs_of(realm: str) -> list[tuple[str, int]]:
    """The KDCs krb5.conf names for ``realm`` (``KRB5_CONFIG``, else /etc/krb5.conf).

    Empty when none is named: MIT krb5 then asks DNS, and for Active
    Directory the domain's own name resolves to its domain controllers.
    """
    files = os.environ.get("KRB5_CONFIG", "/etc/krb5.conf").split(":")
    found: list[tuple[str, int]] = []
    for name in files:
        try:
            text = Path(name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        found += _kdcs_in(text, realm)
    return found


def _kdcs_in(text: str, realm: str) -> list[tuple[str, int]]:
    realms = re.search(r"^\s*\[realms\](.*?)(^\s*\[|\Z)", text, re.S | re.M)
    if realms is None:
        return []
    block = re.search(
        rf"^\s*{re.escape(realm)}\s*=\s*\{{(.*?)^\s*\}}", realms.group(1), re.S | re.M | re.I
    )
    if block is None:
        return []
    kdcs = []
    for value in re.findall(r"^\s*kdc\s*=\s*(\S+)", block.group(1), re.M):
        host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
        kdcs.append((host or value, int(port) if port.isdigit() else KDC_PORT))
    return kdcs


def kdc_time(host: str, port: int, principal: str, timeout: float = 5.0) -> datetime:
    """The KDC's clock, from its answer to an AS-REQ for ``principal``. Raises :class:`OSError`."""
    name, _, realm = principal.rpartition("@")
    request = _as_req(name.split("/"), realm)
    with socket.create_connection((host, port), timeout=timeout) as conn:
        conn.sendall(struct.pack(">I", len(request)) + request)
        header = _read(conn, 4)
        (length,) = struct.unpack(">I", header)
        if length > 1 << 20:
            raise OSError("the KDC's answer is implausibly large")
        answer = _read(conn, length)
    return _error_time(answer)


def _read(conn: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            raise OSError("the KDC closed the connection")
        data += chunk
    return data


# -- DER, as much of it as one AS-REQ and one KRB-ERROR need --------------------------


def _der(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        return bytes([tag, length]) + content
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _ctx(number: int, content: bytes) -> bytes:
    return _der(0xA0 | number, content)


def _int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _seq(*items: bytes) -> bytes:
    return _der(0x30, b"".join(items))


def _name(name_type: int, parts: list[str]) -> bytes:
    strings = [_der(0x1B, part.encode()) for part in parts]
    return _seq(_ctx(0, _int(name_type)), _ctx(1, _seq(*strings)))


def _as_req(parts: list[str], realm: str) -> bytes:
    till = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y%m%d%H%M%SZ").encode()
    body = _seq(
        _ctx(0, _der(0x03, b"\x00\x00\x00\x00\x10")),  # kdc-options: renewable-ok
        _ctx(1, _name(1, parts)),
        _ctx(2, _der(0x1B, realm.encode())),
        _ctx(3, _name(2, ["krbtgt", realm])),
        _ctx(5, _der(0x18, till)),
        _ctx(7, _int(secrets.randbits(31))),
        _ctx(8, _seq(_int(18), _int(17))),
    )
    return _der(0x6A, _seq(_ctx(1, _int(5)), _ctx(2, _int(10)), _ctx(4, body)))


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the element at ``pos``."""
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        size = length & 0x7F
        length = int.from_bytes(data[pos : pos + size], "big")
        pos += size
    if pos + length > len(data):
        raise OSError("the KDC's answer is cut short")
    return tag, pos, pos + length


def _error_time(answer: bytes) -> datetime:
    """``stime`` + ``susec`` of a KRB-ERROR."""
    try:
        tag, start, end = _tlv(answer, 0)
        if tag != 0x7E:
            raise OSError(f"the KDC answered with message tag {tag:#x}, not an error to read")
        _, pos, end = _tlv(answer, start)  # the SEQUENCE
        when: datetime | None = None
        micros = 0
        while pos < end:
            tag, inner, after = _tlv(answer, pos)
            _, value, value_end = _tlv(answer, inner)
            if tag == 0xA4:
                text = answer[value:value_end].decode("ascii")
                when = datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)
            elif tag == 0xA5:
                micros = int.from_bytes(answer[value:value_end], "big")
            pos = after
    except (IndexError, ValueError) as exc:
        raise OSError(f"the KDC's answer is not a Kerberos error message ({exc})") from None
    if when is None:
        raise OSError("the KDC's error message carries no time")
    return when + timedelta(microseconds=micros)
