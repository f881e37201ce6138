"""Fixtures of the fault-injection tests: a directory server and small filesystems of their own.

``fault_slapd`` is an OpenLDAP slapd on 127.0.0.1:3895 (no other test uses
that port), started once for the module that asks for it; the tests stop it
in the middle of a sync and start it again on the same data with
:func:`restart_slapd`. When slapd cannot run here the tests skip with the
reason -- and fail with CI=true.

``mount_tmpfs`` mounts a small tmpfs in the test's temporary folder (and
unmounts it after the test): a filesystem that can really fill up, or be
remounted read-only, for the SQLite database. The kernel refuses writes on a
full or read-only filesystem to root too, which a ``chmod`` would not. It
needs root with CAP_SYS_ADMIN; without it the tests skip with the reason --
and fail with CI=true.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from tests.conftest import in_ci
from tests.ldap.servers import DirectoryServerError, OpenLDAP, make_test_ca, missing_binaries

FAULT_LDAP_PORT = 3895
START_TIMEOUT = 15.0


def unavailable(what: str, reason: str) -> NoReturn:
    """Skip with the reason, or fail when CI=true (where every fault test must run)."""
    if in_ci():
        pytest.fail(f"{what} is required in CI and cannot run: {reason}", pytrace=False)
    pytest.skip(f"{what} not available: {reason} (with CI=true this fails)")


def directory_unavailable(reason: str) -> NoReturn:
    unavailable("OpenLDAP", reason)


@pytest.fixture(scope="module")
def fault_slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenLDAP]:
    """slapd on 127.0.0.1:3895 (StartTLS, its own test CA), for one test module."""
    missing = missing_binaries(*OpenLDAP.binaries)
    if missing:
        directory_unavailable(
            f"{', '.join(missing)} not installed; run scripts/ensure-directory-packages"
        )
    folder = tmp_path_factory.mktemp("fault-slapd")
    server = OpenLDAP()
    try:
        server.start(
            folder / "slapd",
            FAULT_LDAP_PORT,
            size_limit=1000,
            paged_exempt=True,
            tls=make_test_ca(folder / "tls"),
        )
    except DirectoryServerError as exc:
        directory_unavailable(str(exc))
    try:
        yield server
    finally:
        server.stop()


def stop_slapd(server: OpenLDAP, how: signal.Signals) -> None:
    """Send ``how`` (SIGKILL or SIGTERM) to our slapd child and wait until it is gone."""
    process = server.process
    assert process is not None and process.poll() is None, "slapd is not running"
    process.send_signal(how)
    process.wait(timeout=START_TIMEOUT)


def restart_slapd(server: OpenLDAP) -> None:
    """Start slapd again on the same configuration and data; wait until it answers a bind."""
    assert not server.running, "slapd is still running"
    server.launch(START_TIMEOUT)


# --------------------------------------------------------------------------- tmpfs


@dataclass
class Tmpfs:
    """A tmpfs mounted at ``path`` by this test."""

    path: Path
    size: str

    def remount(self, *, read_only: bool) -> None:
        """Make the whole filesystem read-only (EROFS for everyone) or writable again.

        Going read-only fails while a file on it is open for writing: close
        the database connections first.
        """
        mode = "ro" if read_only else "rw"
        subprocess.run(
            ["mount", "-o", f"remount,{mode}", str(self.path)],
            check=True,
            capture_output=True,
        )

    def fill(self) -> Path:
        """Write a file until the filesystem is full (ENOSPC); return it."""
        filler = self.path / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        block = b"\0" * 65536
        try:
            while True:
                try:
                    os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    if len(block) == 1:
                        break
                    block = block[: len(block) // 2]
        finally:
            os.close(fd)
        return filler


@pytest.fixture
def mount_tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Tmpfs]]:
    """mount_tmpfs("8m") -> a tmpfs of that size in tmp_path, unmounted after the test."""
    mounted: list[Tmpfs] = []

    def mount(size: str) -> Tmpfs:
        target = tmp_path / f"tmpfs{len(mounted)}"
        target.mkdir()
        if os.geteuid() != 0:
            unavailable("Mounting a tmpfs", "needs root (CAP_SYS_ADMIN)")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(target)],
            check=False,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            unavailable(
                "Mounting a tmpfs",
                f"`mount -t tmpfs` failed (no CAP_SYS_ADMIN in this container?): "
                f"{done.stderr.strip()}",
            )
        fs = Tmpfs(target, size)
        mounted.append(fs)
        return fs

    yield mount
    for fs in mounted:
        # Lazily when busy: a connection some failed check left open must not
        # leave the mount behind.
        if subprocess.run(["umount", str(fs.path)], check=False, capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(fs.path)], check=True, capture_output=True)
