"""Site host names: the form a licence names them in, and matching a request's host.

A licence may name the host names its portal is served under (the
licence's ``sites`` claim, and ``site`` tokens that add one each). A token
carries each name in one canonical form, so that matching a request is a
plain comparison:

- a DNS host name of 1-253 characters, labels of 1-63 letters, digits and
  hyphens (no hyphen first or last), separated by dots;
- lowercase ASCII; an internationalised name in its IDNA A-label form
  (``bücher.example`` is ``xn--bcher-kva.example``);
- no port, no trailing dot, no wildcard, no IP address (the last label is
  not all digits): a site is a name, and an address would be served to
  whoever reaches it.

The vendor's command line accepts any spelling a person types and hands
:func:`canonical_host` its result; a token is refused unless each name is
already canonical.
"""

from __future__ import annotations

import ipaddress
import re

import idna

MAX_SITES = 100
"""The most host names one licence names (each ``site`` token adds one more)."""

_LABEL = re.compile(r"\A(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
"""Host names that reach the machine itself (see :func:`request_host`)."""


class BadHost(ValueError):
    """A host name that cannot be a licensed site; the message says why."""


def canonical_host(text: str) -> str:
    """``text`` as a site name in canonical form (see the module); raises :class:`BadHost`."""
    name = text.strip()
    if not name:
        raise BadHost("a host name is empty")
    if "*" in name:
        raise BadHost(f"`{name[:80]}`: wildcards are not allowed; name each host")
    if ":" in name or "/" in name:
        raise BadHost(f"`{name[:80]}`: a host name only, without a port, scheme or path")
    if name.endswith("."):
        name = name[:-1]
    try:
        ascii_name = idna.encode(name, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise BadHost(f"`{name[:80]}` is not a valid host name ({exc})") from None
    check_canonical(ascii_name)
    return ascii_name


def check_canonical(name: str) -> None:
    """Raise :class:`BadHost` unless ``name`` is a site name in canonical form."""
    if not name or len(name) > 253:
        raise BadHost(f"`{name[:80]}` is not a host name of 1-253 characters")
    labels = name.split(".")
    if not all(_LABEL.match(label) for label in labels):
        raise BadHost(
            f"`{name[:80]}` must be lowercase letters, digits, hyphens and dots "
            "(an international name in its xn-- form), without a port or trailing dot"
        )
    if labels[-1].isdigit():
        raise BadHost(f"`{name[:80]}` is an address; a site is a host name")
    if name in LOOPBACK_HOSTS:
        raise BadHost(f"`{name}` is this machine's own name, always open to its administrators")


def request_host(host_header: str) -> str | None:
    """The host name a request's ``Host`` header names, compared form; None if unreadable.

    The port is dropped, the name lowercased and one trailing dot removed
    (``Portal.Example.com.:8443`` is ``portal.example.com``); an IPv6
    literal loses its brackets. A name sent in Unicode is put in its
    A-label form, as browsers send it.
    """
    value = host_header.strip()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        literal = value[1:end]
        try:
            return str(ipaddress.IPv6Address(literal))
        except ValueError:
            return None
    name = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    name = name.lower()
    if name.endswith("."):
        name = name[:-1]
    if not name or len(name) > 253:
        return None
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            return None
    return name


def is_loopback_address(address: str | None) -> bool:
    """Whether a socket peer's address is this machine (127.0.0.0/8, ::1)."""
    if not address:
        return False
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
