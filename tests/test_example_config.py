"""config.example.yaml is a working configuration and shows the real defaults."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from seatgate.accounts.passwords import HashParameters
from seatgate.config import (
    AuditConfig,
    Config,
    LicenseConfig,
    SeatsConfig,
    WebConfig,
    load_config,
)
from seatgate.licensing.vendor import generate_key

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"


def test_example_config_loads_with_its_key_file(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / "seatgate.yaml")
    generate_key(tmp_path / "vendor-k1.pem", "k1")
    config = load_config(tmp_path / "seatgate.yaml")
    assert config.installation_id == "intranet.example.com"
    assert set(config.license.public_keys) == {"k1"}
    assert config.database_url == f"sqlite:///{tmp_path / 'seatgate.db'}"


def test_example_config_values_are_the_defaults_in_code() -> None:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    defaults = Config(installation_id="x")
    assert data["database_url"] == defaults.database_url
    assert data["license"]["issuer"] == LicenseConfig().issuer
    assert data["license"]["leeway_seconds"] == LicenseConfig().leeway_seconds
    assert data["seats"] == {
        "assignment": SeatsConfig().assignment,
        "reserved_for_admins": SeatsConfig().reserved_for_admins,
        "reclaim_idle_days": SeatsConfig().reclaim_idle_days,
        "reclaim_on_demand": SeatsConfig().reclaim_on_demand,
        "request_days": SeatsConfig().request_days,
    }
    assert data["web"] == {
        name: getattr(WebConfig(), name) for name in WebConfig.__dataclass_fields__
    }
    assert data["audit"] == {"key_env": AuditConfig().key_env}
    params = HashParameters()
    assert data["passwords"] == {
        "argon2_time_cost": params.time_cost,
        "argon2_memory_kib": params.memory_cost_kib,
        "argon2_parallelism": params.parallelism,
    }


def test_example_ldap_block_is_valid_and_shows_the_defaults(tmp_path: Path) -> None:
    from seatgate.config.ldap import LdapConfig, parse_ldap
    from seatgate.config.parse import Section

    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    start = lines.index("# ldap:")
    block = "\n".join(line[2:] for line in lines[start:] if line.startswith("# "))
    data = yaml.safe_load(block)["ldap"]
    (tmp_path / "corp-ca.pem").write_text("placeholder", encoding="ascii")
    config = parse_ldap(Section(data, "ldap"), tmp_path)
    defaults = LdapConfig(url="x", base_dn="x", bind_dn="x")
    for key in (
        "start_tls",
        "insecure",
        "bind_password_env",
        "preset",
        "page_size",
        "timeout_seconds",
        "max_disable_ratio",
        "max_disable_count",
        "seat_groups_mode",
        "nested_groups",
        "admin_groups",
        "group_base_dn",
        "server_down_seconds",
    ):
        assert getattr(config, key) == getattr(defaults, key), key
    assert config.seat_groups == defaults.seat_groups
    # Commented out: derived from base_dn unless set.
    assert (config.upn_suffixes, config.netbios_domain) == (None, None)
    assert config.urls == defaults.urls == ()


def test_example_notify_block_is_valid_and_shows_the_defaults(tmp_path: Path) -> None:
    from seatgate.config.notify import NotifyConfig, parse_notify
    from seatgate.config.parse import Section

    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    start = lines.index("# notify:")
    end = lines.index("", start)
    block = "\n".join(line[2:] for line in lines[start:end] if line.startswith("# "))
    data = yaml.safe_load(block)["notify"]
    assert yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))["notify"] is None
    config = parse_notify(Section(data, "notify"), tmp_path)
    assert config.language == NotifyConfig().language
    assert [hook.url for hook in config.webhooks] == ["https://hooks.example.com/seatgate"]
    email = config.email
    assert email is not None
    assert (email.security, email.port, email.to_admins, email.timeout_seconds) == (
        "starttls",
        587,
        True,
        30,
    )
