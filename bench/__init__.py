"""Benchmarks of seatgate: ``bench/run`` (see :mod:`bench.main`).

Each ``bench/bench_*.py`` module exposes ``run(quick: bool) -> list[Result]``.
This package also holds what several of them share: the size of a run,
throwaway databases, and a built, licensed installation.

Sizes: the full run, ``--quick`` (smaller, for development) and ``--smoke``
(tiny, for the test suite: it checks that the harness works, and its figures
mean nothing). ``--smoke`` is passed to the modules, and to the processes they
spawn, through the environment variable :data:`SMOKE_ENV`.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, text

from seatgate.accounts.passwords import HashParameters
from seatgate.app import Core
from seatgate.config import Config, LicenseConfig, WebConfig
from seatgate.licensing.vendor import VendorKey, issue_token

SMOKE_ENV = "SEATGATE_BENCH_SMOKE"
PG_ENV = "SEATGATE_BENCH_PG"
PG_ADMIN_URL = os.environ.get(PG_ENV, "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
INSTALLATION = "bench.example.com"
ISSUER = "seatgate-vendor"
BACKENDS = ("sqlite", "postgres")
CHEAP_HASH = HashParameters(time_cost=1, memory_cost_kib=1024, parallelism=1)
"""argon2id parameters for setups that verify no password, and for smoke runs."""


def smoke() -> bool:
    """Whether this is a smoke run (tiny sizes; the figures mean nothing)."""
    return os.environ.get(SMOKE_ENV, "") == "1"


def password_parameters() -> HashParameters:
    """The production argon2id parameters (the defaults); cheap ones in a smoke run."""
    return CHEAP_HASH if smoke() else HashParameters()


def pick(quick: bool, *, full: int, quick_size: int, smoke_size: int) -> int:
    """The size for this run: full, ``--quick`` or ``--smoke``."""
    if smoke():
        return smoke_size
    return quick_size if quick else full


@contextmanager
def database(backend: str, workdir: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file in ``workdir``, or a throwaway
    PostgreSQL database (dropped afterwards) on the server of :data:`PG_ADMIN_URL`."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / f'seatgate-{secrets.token_hex(4)}.db'}"
        return
    if backend != "postgres":
        raise ValueError(f"unknown database backend {backend!r}")
    name = f"seatgate_bench_{secrets.token_hex(6)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextmanager
def workdir() -> Iterator[Path]:
    """A temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="seatgate-bench-") as path:
        yield Path(path)


@dataclass
class Installation:
    """A vendor key and the configuration of one installation that trusts it."""

    db_url: str
    passwords: HashParameters = field(default_factory=HashParameters)
    web: WebConfig = field(default_factory=WebConfig)
    key: VendorKey = field(default_factory=lambda: VendorKey(Ed25519PrivateKey.generate(), "b1"))

    @property
    def config(self) -> Config:
        """The validated configuration, as a server would load it."""
        return Config(
            installation_id=INSTALLATION,
            database_url=self.db_url,
            license=LicenseConfig(
                issuer=ISSUER, public_keys={self.key.kid: self.key.private_key.public_key()}
            ),
            passwords=self.passwords,
            web=self.web,
        )

    def write_config(self, path: Path) -> Path:
        """Write the configuration as a YAML file (for spawned processes) and return its path."""
        data = {
            "installation_id": INSTALLATION,
            "database_url": self.db_url,
            "license": {"issuer": ISSUER, "public_keys": {self.key.kid: self.key.public_pem()}},
            "passwords": {
                "argon2_time_cost": self.passwords.time_cost,
                "argon2_memory_kib": self.passwords.memory_cost_kib,
                "argon2_parallelism": self.passwords.parallelism,
            },
        }
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return path

    def create(self, *, seats: int) -> None:
        """Create the schema and install a licence for ``seats`` seats issued now."""
        core = Core.build(self.config, check_schema=False)
        try:
            core.init_schema()
            token = issue_token(
                self.key,
                kind="license",
                installation_id=INSTALLATION,
                customer="bench",
                now=datetime.now(UTC),
                issuer=ISSUER,
                edition="bizspace",
                seats=seats,
            )
            core.licensing.install(token, actor="bench")
        finally:
            core.close()

    def open(self, *, rate_limited: bool = False) -> Core:
        """Build the installation as a running server does (schema checked, wall clock)."""
        return Core.build(self.config, rate_limited=rate_limited)
