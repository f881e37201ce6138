"""The forms a directory user may type a login in: ``alice@corp.example``, ``CORP\\alice``.

A Windows user types whatever the domain taught them: the bare account name,
the user principal name (UPN, ``name@suffix``) or the down-level logon name
(``NETBIOS\\name``). Each is only a way of *naming* a stored account: the
typed text selects an account and is never sent to the directory (the bind
uses the DN the sync stored).

The rules, in order:

1. the typed text itself, compared normalised (:func:`login_key`), names an
   account of any source -- a local account called ``ops@corp.example``
   stays reachable as it always was;
2. ``name@suffix`` with a configured UPN suffix, or ``DOMAIN\\name`` with the
   configured NetBIOS domain, names the *directory* account ``name``.

Any other ``@`` or ``\\`` form (a foreign domain) names nothing beyond rule 1,
and is then refused exactly like a wrong password.
"""

from __future__ import annotations

from dataclasses import dataclass

from seatgate.accounts.logins import login_key
from seatgate.errors import InvalidLogin


@dataclass(frozen=True)
class Candidate:
    """A stored login key the typed text may name, and whether only a directory account counts."""

    key: str
    directory_only: bool


@dataclass(frozen=True)
class LoginForms:
    """The UPN suffixes and NetBIOS domain under which directory logins may be typed.

    Both are compared normalised (case-folded), as logins are. With neither
    set, only the stored login itself is accepted.
    """

    upn_suffixes: tuple[str, ...] = ()
    netbios_domain: str | None = None

    @classmethod
    def of_directory(
        cls, base_dn: str, upn_suffixes: tuple[str, ...] | None, netbios_domain: str | None
    ) -> LoginForms:
        """The forms of a directory's logins; None (not configured) derives from ``base_dn``,
        an empty value turns the form off."""
        return cls(
            upn_suffixes=upn_suffixes_of(base_dn) if upn_suffixes is None else upn_suffixes,
            netbios_domain=(
                netbios_domain_of(base_dn) if netbios_domain is None else netbios_domain or None
            ),
        )

    def candidates(self, typed: str) -> list[Candidate]:
        """The stored login keys ``typed`` may name, most specific first.

        Raises :class:`InvalidLogin` when ``typed`` itself is not a usable
        login (empty, too long, control characters).
        """
        exact = login_key(typed)
        found = [Candidate(exact, directory_only=False)]
        name = self._directory_name(exact)
        if name is not None and name != exact:
            found.append(Candidate(name, directory_only=True))
        return found

    def limit_key(self, typed: str) -> str:
        """The key the failed-login limiter counts ``typed`` under.

        Every form of one directory login counts as that login, so typing
        ``alice``, ``alice@corp.example`` and ``CORP\\alice`` buys a guesser no
        more attempts than ``alice`` alone. Decided from the text only (never
        from which accounts exist), so the limiter tells nothing about them.
        Raises :class:`InvalidLogin` like :meth:`candidates`.
        """
        return self.candidates(typed)[-1].key

    def _directory_name(self, key: str) -> str | None:
        """``name`` of a recognised ``name@suffix`` or ``DOMAIN\\name`` key, else None."""
        name, at, suffix = key.rpartition("@")
        if at and name and suffix in self._suffix_keys:
            return _usable(name)
        domain, slash, name = key.partition("\\")
        if slash and name and self._domain_key is not None and domain == self._domain_key:
            return _usable(name)
        return None

    @property
    def _suffix_keys(self) -> frozenset[str]:
        return frozenset(_key(suffix) for suffix in self.upn_suffixes)

    @property
    def _domain_key(self) -> str | None:
        return _key(self.netbios_domain) if self.netbios_domain else None


def _key(text: str) -> str:
    try:
        return login_key(text)
    except InvalidLogin:
        return ""


def _usable(name: str) -> str | None:
    # Spaces around the separator ("alice @corp.example") are not a login's.
    key = _key(name)
    return key if key and key == name else None


def upn_suffixes_of(base_dn: str) -> tuple[str, ...]:
    """The DNS domain in ``base_dn``'s ``DC=`` parts (``corp.example``), as the default suffix.

    ``OU=Staff,DC=corp,DC=example`` gives ``("corp.example",)``; a base DN
    without ``DC=`` parts gives no suffix.
    """
    parts = [
        rdn.split("=", 1)[1].strip()
        for rdn in base_dn.split(",")
        if "=" in rdn and rdn.split("=", 1)[0].strip().lower() == "dc"
    ]
    return (".".join(parts),) if parts and all(parts) else ()


def netbios_domain_of(base_dn: str) -> str | None:
    """The first ``DC=`` part of ``base_dn`` in capitals (``CORP``): the default NetBIOS domain."""
    suffixes = upn_suffixes_of(base_dn)
    return suffixes[0].split(".", 1)[0].upper() if suffixes else None
