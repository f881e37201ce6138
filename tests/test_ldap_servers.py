"""Choosing among several directory servers, and their marks, without a network.

The real servers (a closed port, a slapd stopped mid-run, every server
down) are in tests/ldap/test_failover.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest

from seatgate.adapters.ldap_marks import ServerMarks
from seatgate.adapters.ldap_servers import DirectoryServers, ServerUnreachable
from seatgate.errors import DirectoryUnavailable

URLS = ("ldaps://dc1", "ldaps://dc2", "ldaps://dc3")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def attempt_with(down: set[str], tried: list[str]) -> Callable[[str], str]:
    def attempt(url: str) -> str:
        tried.append(url)
        if url in down:
            raise ServerUnreachable(url, "[Errno 111] Connection refused")
        return f"conn to {url}"

    return attempt


def test_the_first_server_that_answers_is_used_in_order() -> None:
    servers = DirectoryServers(URLS, 60)
    tried: list[str] = []
    answer = servers.first_answering(attempt_with(set(), tried))
    assert answer == ("ldaps://dc1", "conn to ldaps://dc1")
    assert tried == ["ldaps://dc1"]


def test_a_dead_server_is_tried_last_until_its_time_is_over() -> None:
    clock = Clock()
    servers = DirectoryServers(URLS, 60, monotonic=clock)
    tried: list[str] = []
    url, _ = servers.first_answering(attempt_with({"ldaps://dc1"}, tried))
    assert (url, tried) == ("ldaps://dc2", ["ldaps://dc1", "ldaps://dc2"])
    assert servers.is_down("ldaps://dc1")
    # Remembered: the next connection goes straight to dc2.
    tried.clear()
    assert servers.first_answering(attempt_with(set(), tried))[0] == "ldaps://dc2"
    assert tried == ["ldaps://dc2"]
    assert servers.order() == ["ldaps://dc2", "ldaps://dc3", "ldaps://dc1"]
    # After server_down_seconds dc1 is first again, and answering clears the mark.
    clock.now += 60
    tried.clear()
    assert servers.first_answering(attempt_with(set(), tried))[0] == "ldaps://dc1"
    assert not servers.is_down("ldaps://dc1")


def test_with_every_server_marked_they_are_all_still_tried() -> None:
    servers = DirectoryServers(URLS, 60)
    for url in URLS:
        servers.mark_down(url, "earlier")
    tried: list[str] = []
    assert servers.first_answering(attempt_with({"ldaps://dc1"}, tried))[0] == "ldaps://dc2"
    assert tried == ["ldaps://dc1", "ldaps://dc2"]


def test_all_down_names_each_server_and_why() -> None:
    servers = DirectoryServers(URLS, 60)
    with pytest.raises(DirectoryUnavailable) as error:
        servers.first_answering(attempt_with(set(URLS), []))
    message = str(error.value)
    assert "none of the 3 directory servers answered" in message
    for url in URLS:
        assert f"{url}: [Errno 111] Connection refused" in message


def test_one_server_down_keeps_the_one_server_message() -> None:
    servers = DirectoryServers(URLS[:1], 60)
    with pytest.raises(DirectoryUnavailable) as error:
        servers.first_answering(attempt_with(set(URLS), []))
    assert str(error.value) == "cannot reach ldaps://dc1: [Errno 111] Connection refused"


def test_skipped_servers_are_not_tried_and_are_named() -> None:
    servers = DirectoryServers(URLS, 60)
    tried: list[str] = []
    with pytest.raises(DirectoryUnavailable) as error:
        servers.first_answering(
            attempt_with({"ldaps://dc2", "ldaps://dc3"}, tried),
            skip=("ldaps://dc1",),
        )
    assert tried == ["ldaps://dc2", "ldaps://dc3"]
    assert "ldaps://dc1 stopped answering" in str(error.value)


def test_other_errors_are_not_failover() -> None:
    # A server that answered (here: a bug, any other exception) is not "down".
    servers = DirectoryServers(URLS, 60)

    def attempt(url: str) -> str:
        raise DirectoryUnavailable("the service account could not bind")

    with pytest.raises(DirectoryUnavailable, match="service account"):
        servers.first_answering(attempt)
    assert not servers.is_down("ldaps://dc1")


def test_marks_are_shared_by_threads() -> None:
    servers = DirectoryServers(URLS, 60)
    threads = [
        threading.Thread(target=servers.mark_down, args=("ldaps://dc1", "x")) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert servers.order()[-1] == "ldaps://dc1"


# --------------------------------------------------------------------------- marks


def test_one_server_keeps_its_plain_mark() -> None:
    marks = ServerMarks(URLS[:1], "12345")
    assert marks.of("ldaps://dc1") == "12345"
    assert marks.stored_with("ldaps://dc1", "12400") == "12400"
    assert ServerMarks(URLS[:1], None).of("ldaps://dc1") is None


def test_several_servers_keep_one_mark_each() -> None:
    marks = ServerMarks(URLS, None)
    assert marks.of("ldaps://dc1") is None
    stored = marks.stored_with("ldaps://dc1", "100")
    assert stored is not None
    after = ServerMarks(URLS, stored)
    assert after.of("ldaps://dc1") == "100"
    assert after.of("ldaps://dc2") is None  # dc2's uSNs are its own: read in full there
    both = ServerMarks(URLS, after.stored_with("ldaps://dc2", "7"))
    assert (both.of("ldaps://dc1"), both.of("ldaps://dc2")) == ("100", "7")


@pytest.mark.parametrize("stored", ["12345", "[1, 2]", '{"ldaps://dc1": 5}', "{"])
def test_a_mark_that_is_not_a_list_of_marks_means_a_full_read(stored: str) -> None:
    assert ServerMarks(URLS, stored).of("ldaps://dc1") is None


def test_marks_of_servers_no_longer_listed_are_dropped() -> None:
    stored = json.dumps({"ldaps://old": "1", "ldaps://dc2": "2"})
    marks = ServerMarks(URLS, stored)
    assert marks.stored_with("ldaps://dc1", "3") == json.dumps(
        {"ldaps://dc1": "3", "ldaps://dc2": "2"}, sort_keys=True
    )


class RefusingConnection:
    """An ldap3 connection whose server answers every bind with one result code."""

    def __init__(self, code: int, description: str) -> None:
        self.result = {"result": code, "description": description}
        self.bound = False
        self.socket = None

    def open(self) -> None: ...

    def bind(self) -> bool:
        return False

    def unbind(self) -> None: ...


@pytest.mark.parametrize(
    ("code", "description", "moves_on"),
    [(51, "busy", True), (52, "unavailable", True), (49, "invalidCredentials", False)],
)
def test_busy_or_unavailable_binds_move_on_a_wrong_password_does_not(
    monkeypatch: pytest.MonkeyPatch, code: int, description: str, moves_on: bool
) -> None:
    from seatgate.adapters import ldap_servers
    from seatgate.config.ldap import LdapConfig

    def connection(server: object, **options: object) -> RefusingConnection:
        return RefusingConnection(code, description)

    monkeypatch.setattr(ldap_servers.ldap3, "Connection", connection)
    config = LdapConfig(url="ldaps://dc1", base_dn="dc=x", bind_dn="cn=svc,dc=x")
    if moves_on:
        with pytest.raises(ServerUnreachable, match=f"answered {description}"):
            ldap_servers.open_connection(config, "ldaps://dc1", "cn=a,dc=x", "pw")
    else:
        conn = ldap_servers.open_connection(config, "ldaps://dc1", "cn=a,dc=x", "pw")
        assert not conn.bound
