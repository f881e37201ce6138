"""Against the real Samba AD: a directory account cannot be told from an unknown login.

Neither by the time a wrong password takes (medians within 10 %, samples
interleaved so that the load of the machine falls on both alike) nor by the
answer, even while the directory cannot be reached.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace

from seatgate.gate.decision import Reason
from tests.ldap.conftest import UniqueNames
from tests.ldap.product import (
    PASSWORD,
    Installer,
    ad_bulk,
    ad_ou,
    ldap_config,
    make_sync,
    reader,
    refused,
    samba_config,
)
from tests.ldap.servers import SambaAD

SAMPLES = 40
WARM_UP = 8


def test_a_wrong_directory_password_takes_as_long_as_an_unknown_login(
    samba_ad: SambaAD, names: UniqueNames, install: Installer, sqlite_url: str
) -> None:
    ou = ad_ou(samba_ad, names)
    users = sorted(ad_bulk(samba_ad, ou, names.prefix, 4))
    app = install(sqlite_url, samba_config(samba_ad, ou), service_password=samba_ad.admin_password)
    make_sync(app).run(reader(app))
    for i in range(WARM_UP):
        app.gate.decide(users[i % len(users)], f"warm-up-{i}")
    times: dict[str, list[float]] = {"directory": [], "unknown": []}
    for i in range(SAMPLES):
        attempts = [("directory", users[i % len(users)]), ("unknown", f"{names.prefix}x{i:04d}")]
        for kind, login in attempts if i % 2 else attempts[::-1]:
            started = time.perf_counter()
            decision = app.gate.decide(login, f"not-the-password-{i}")
            times[kind].append(time.perf_counter() - started)
            assert refused(decision, Reason.INVALID_CREDENTIALS), (kind, decision)
    directory = statistics.median(times["directory"])
    unknown = statistics.median(times["unknown"])
    print(f"medians: directory {directory * 1000:.1f} ms, unknown {unknown * 1000:.1f} ms")
    assert abs(unknown - directory) <= 0.10 * directory, (directory, unknown)


def test_while_the_directory_is_unreachable_an_unknown_login_is_answered_alike(
    samba_ad: SambaAD, names: UniqueNames, install: Installer, sqlite_url: str
) -> None:
    ou = ad_ou(samba_ad, names)
    users = sorted(ad_bulk(samba_ad, ou, names.prefix, 2))
    app = install(sqlite_url, samba_config(samba_ad, ou), service_password=samba_ad.admin_password)
    make_sync(app).run(reader(app))
    app.accounts.add(f"{names.prefix}local", password="local-pw", actor="test")
    # A CA the server's certificate does not chain to: no bind gets through.
    cut_off = install.reopen(app, replace(ldap_config(app), ca_file=samba_ad.other_ca_file))

    for login in (users[0], f"{names.prefix}nobody"):
        for password in (PASSWORD, "a-guess"):
            decision = cut_off.gate.decide(login, password)
            assert refused(decision, Reason.DIRECTORY_UNAVAILABLE), (login, password)
    # Local accounts still sign in while the directory is away.
    assert cut_off.gate.decide(f"{names.prefix}local", "local-pw").allowed
    assert refused(cut_off.gate.decide(f"{names.prefix}local", "x"), Reason.INVALID_CREDENTIALS)
