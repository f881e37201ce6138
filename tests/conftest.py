"""Shared fixtures: a vendor key, token minting, throwaway databases, a built installation.

Every database test runs on SQLite and on PostgreSQL (127.0.0.1:5432, user
postgres, trust auth). Each PostgreSQL test gets its own database, created
and dropped here. With CI=true an unreachable PostgreSQL fails the test;
elsewhere it skips with the reason.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from seatgate.accounts.passwords import HashParameters
from seatgate.app import Core
from seatgate.clock import FakeClock
from seatgate.config import Config, LicenseConfig
from seatgate.config.seats import SeatsConfig
from seatgate.licensing.vendor import VendorKey, issue_token

pytest_plugins = ["tests.web_support", "tests.seat_ops_support"]

INSTALLATION = "intranet-a.example.com"
ISSUER = "seatgate-vendor"
PG_ADMIN_URL = os.environ.get(
    "SEATGATE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
# Cheap argon2id parameters: the tests hash hundreds of passwords.
FAST_HASH = HashParameters(time_cost=1, memory_cost_kib=1024, parallelism=1)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _pg_unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"PostgreSQL is required in CI and is not usable: {reason}")
    pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432 ({reason}); CI would fail here")


@pytest.fixture(scope="session")
def vendor_key() -> VendorKey:
    return VendorKey(Ed25519PrivateKey.generate(), "k1")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def mint(vendor_key: VendorKey, clock: FakeClock) -> Callable[..., str]:
    """mint("license", seats=30, ...) -> a real signed token for INSTALLATION."""

    def _mint(kind: str, **claims: Any) -> str:
        claims.setdefault("installation_id", INSTALLATION)
        claims.setdefault("customer", "acme")
        claims.setdefault("now", clock.now())
        if kind in ("license", "trial"):
            claims.setdefault("edition", "bizspace")
        if kind == "license":
            claims.setdefault("seats", 25)
        return issue_token(vendor_key, kind=kind, **claims)

    return _mint


def create_pg_database() -> str:
    """Create a throwaway PostgreSQL database and return its URL."""
    from sqlalchemy import create_engine, text

    name = f"seatgate_test_{secrets.token_hex(6)}"
    try:
        engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
    except Exception as exc:
        _pg_unavailable(str(exc).splitlines()[0])
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(url: str) -> None:
    from sqlalchemy import create_engine, text

    name = url.rsplit("/", 1)[1]
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: SQLite file, then a throwaway PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'seatgate.db'}"
        return
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'seatgate.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL database of the test's own, dropped afterwards."""
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


def make_config(
    db_url: str,
    vendor_key: VendorKey,
    *,
    assignment: str = "auto",
    reserved_for_admins: int = 0,
    leeway_seconds: int = 60,
) -> Config:
    return Config(
        installation_id=INSTALLATION,
        database_url=db_url,
        license=LicenseConfig(
            issuer=ISSUER,
            public_keys={vendor_key.kid: vendor_key.private_key.public_key()},
            leeway_seconds=leeway_seconds,
        ),
        seats=SeatsConfig(assignment=assignment, reserved_for_admins=reserved_for_admins),  # type: ignore[arg-type]
        passwords=FAST_HASH,
    )


def write_config(
    path: Path, db_url: str, vendor_key: VendorKey, extra: Mapping[str, Any] | None = None
) -> Path:
    """A seatgate YAML file for ``db_url`` (cheap argon2, auto assignment) plus ``extra`` keys."""
    data: dict[str, Any] = {
        "installation_id": INSTALLATION,
        "database_url": db_url,
        "license": {
            "issuer": ISSUER,
            "public_keys": {vendor_key.kid: vendor_key.public_pem()},
            "leeway_seconds": 60,
        },
        "seats": {"assignment": "auto", "reserved_for_admins": 0},
        "passwords": {
            "argon2_time_cost": FAST_HASH.time_cost,
            "argon2_memory_kib": FAST_HASH.memory_cost_kib,
            "argon2_parallelism": FAST_HASH.parallelism,
        },
        **(extra or {}),
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture
def build_app(vendor_key: VendorKey, clock: FakeClock) -> Iterator[Callable[..., Core]]:
    """build_app(db_url, assignment=..., reserved_for_admins=...) -> an initialised Core."""
    built: list[Core] = []

    def _build(url: str, **options: Any) -> Core:
        app = Core.build(make_config(url, vendor_key, **options), clock=clock, check_schema=False)
        app.init_schema()
        built.append(app)
        return app

    yield _build
    for app in built:
        app.close()


@pytest.fixture
def app(build_app: Callable[..., Core], db_url: str) -> Core:
    """An initialised installation with no licence, on each database."""
    return build_app(db_url)


def add_users(app: Core, count: int, *, prefix: str = "user", admin: bool = False) -> list[str]:
    """Create `count` local accounts whose password is their login + '-pw'."""
    logins = [f"{prefix}{i:03d}" for i in range(count)]
    for login in logins:
        app.accounts.add(login, password=f"{login}-pw", actor="test", is_admin=admin)
    return logins
