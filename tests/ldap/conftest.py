"""Fixtures for tests against real directory servers on loopback.

``samba_ad`` (Samba AD DC on 389/636), ``openldap`` (slapd on 3890) and
``openldap_limited`` (slapd on 3891, hard size limit 50 also for paged
searches) start once per test session, only when a test asks for them, and
stop at the end of the session. When a server cannot run here (packages
missing: scripts/ensure-directory-packages; not root; port taken) the tests
that need it skip with the reason -- and fail with CI=true.

The servers are shared by all tests of the session: take names from the
``names`` fixture so tests do not collide.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from tests.ldap.servers import (
    DirectoryServerError,
    OpenLDAP,
    SambaAD,
    TlsFiles,
    make_test_ca,
    missing_binaries,
)

if TYPE_CHECKING:
    from tests.ldap.product import Installer

OPENLDAP_PORT = 3890
OPENLDAP_LIMITED_PORT = 3891
LIMITED_SIZE = 50


# ldap3 2.9.1 checks host names with ssl.match_hostname (deprecated; on Python
# 3.12+ it uses its own copy): one warning per TLS connection, nothing to act on.
_LDAP3_MATCH_HOSTNAME = pytest.mark.filterwarnings(
    r"ignore:ssl\.match_hostname\(\) is deprecated:DeprecationWarning"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(_LDAP3_MATCH_HOSTNAME)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(server: str, reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{server} is required in CI and cannot run: {reason}", pytrace=False)
    pytest.skip(f"{server} not available: {reason} (with CI=true this fails)")


def _check_can_run(server: str, binaries: tuple[str, ...], *, needs_root: bool) -> None:
    missing = missing_binaries(*binaries)
    if missing:
        unavailable(
            server,
            f"{', '.join(missing)} not installed; run scripts/ensure-directory-packages",
        )
    if needs_root and os.geteuid() != 0:
        unavailable(server, "needs root (ports 389/636)")


@pytest.fixture(scope="session")
def directory_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """One test CA (and an unrelated one) for every directory server of the session."""
    return make_test_ca(tmp_path_factory.mktemp("directory-tls"))


@pytest.fixture(scope="session")
def samba_ad(
    tmp_path_factory: pytest.TempPathFactory, directory_tls: TlsFiles
) -> Iterator[SambaAD]:
    """A freshly provisioned Samba AD DC (SEATGATE.TEST) on 127.0.0.1:389/636."""
    _check_can_run("Samba AD", SambaAD.binaries, needs_root=True)
    server = SambaAD()
    try:
        server.start(tmp_path_factory.mktemp("samba-ad"), tls=directory_tls)
    except DirectoryServerError as exc:
        unavailable("Samba AD", str(exc))
    try:
        yield server
    finally:
        server.stop()


def _openldap(
    tmp_path_factory: pytest.TempPathFactory,
    tls: TlsFiles,
    name: str,
    port: int,
    size_limit: int | None = 1000,
    paged_exempt: bool = True,
) -> Iterator[OpenLDAP]:
    _check_can_run("OpenLDAP", OpenLDAP.binaries, needs_root=False)
    server = OpenLDAP()
    try:
        server.start(
            tmp_path_factory.mktemp(name),
            port,
            size_limit,
            paged_exempt=paged_exempt,
            tls=tls,
        )
    except DirectoryServerError as exc:
        unavailable("OpenLDAP", str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def openldap(
    tmp_path_factory: pytest.TempPathFactory, directory_tls: TlsFiles
) -> Iterator[OpenLDAP]:
    """slapd on 127.0.0.1:3890: 1000-entry cap for unpaged searches, paged searches exempt."""
    yield from _openldap(tmp_path_factory, directory_tls, "openldap", port=OPENLDAP_PORT)


@pytest.fixture(scope="session")
def openldap_limited(
    tmp_path_factory: pytest.TempPathFactory, directory_tls: TlsFiles
) -> Iterator[OpenLDAP]:
    """slapd on 127.0.0.1:3891 whose hard size limit (50) also caps paged searches."""
    yield from _openldap(
        tmp_path_factory,
        directory_tls,
        "openldap-limited",
        port=OPENLDAP_LIMITED_PORT,
        size_limit=LIMITED_SIZE,
        paged_exempt=False,
    )


class UniqueNames:
    """Collision-free names for one test on the shared servers.

    ``names("alice")`` -> "alice3f9a1c1" (label cut to 8 characters, so a name
    stays within sAMAccountName's 20); ``names.prefix`` -> "b3f9a1c" for
    ``create_users_bulk``/``add_users_bulk`` (which append 5 digits).
    """

    def __init__(self) -> None:
        self.tag = secrets.token_hex(3)
        self._count = 0

    def __call__(self, label: str = "u") -> str:
        self._count += 1
        return f"{label[:8]}{self.tag}{self._count}"

    @property
    def prefix(self) -> str:
        return f"b{self.tag}"


@pytest.fixture
def names() -> UniqueNames:
    return UniqueNames()


@pytest.fixture
def install(
    vendor_key: Any, clock: Any, mint: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Installer]:
    """install(url, ldap, ...) -> a Core of a fresh installation; all closed afterwards."""
    # Imported here: tests.ldap.product imports this module.
    from tests.ldap.product import Installer

    installer = Installer(vendor_key, clock, mint, monkeypatch)
    yield installer
    installer.close()
