"""Unit tests: login normalisation, password hashing, configuration validation."""

from __future__ import annotations

import copy
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from seatgate.accounts.logins import MAX_LOGIN_LENGTH, display_login, login_key
from seatgate.accounts.passwords import HashParameters, PasswordHasher, is_argon2_hash
from seatgate.config import Config, config_from_mapping, load_config
from seatgate.errors import ConfigError, InvalidLogin, InvalidPassword
from seatgate.licensing.vendor import VendorKey, generate_key
from tests.conftest import FAST_HASH, INSTALLATION

# -- login_key ------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        "Bob",
        "bob",
        "BOB",
        "BOB ",
        "  bob\t",
        "\uff22\uff4f\uff42",  # fullwidth "Bob"
        "\uff42\uff4f\uff42",  # fullwidth "bob"
        "\u00a0Bob\u3000",  # no-break and ideographic spaces around it
    ],
    ids=repr,
)
def test_spellings_of_bob_share_one_key(typed: str) -> None:
    assert login_key(typed) == "bob"


def test_ligature_is_decomposed() -> None:
    assert login_key("\ufb01le") == "file"  # "ﬁle" with the fi ligature
    assert login_key("\ufb01le") == login_key("FILE")


def test_german_sharp_s_is_case_folded() -> None:
    assert login_key("Stra\u00dfe") == "strasse"
    assert login_key("STRASSE") == login_key("stra\u00dfe")
    assert login_key("\u1e9e") == "ss"  # capital sharp s


def test_composed_and_decomposed_accents_share_one_key() -> None:
    composed = "Jos\u00e9"
    decomposed = "Jose\u0301"
    assert login_key(composed) == login_key(decomposed) == "jos\u00e9"


def test_distinct_logins_keep_distinct_keys() -> None:
    keys = {login_key(x) for x in ("bob", "bob2", "b.ob", "bób", "rob", "bo b")}
    assert len(keys) == 6


@given(st.text(alphabet=st.characters(max_codepoint=127, blacklist_categories=("Cc",))))
def test_an_ascii_login_keys_as_the_full_normalisation_does(typed: str) -> None:
    """ASCII logins take a shortcut (lower and strip): the same key as NFKC and case folding."""
    full = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", typed).casefold()).strip()
    if full:
        assert login_key(typed) == full


def test_key_is_idempotent() -> None:
    for typed in ("Stra\u00dfe", "\ufb01le", "\uff22\uff4f\uff42", "\u0130stanbul", "\u03a3\u03b1"):
        key = login_key(typed)
        assert login_key(key) == key


@pytest.mark.parametrize(
    "bad",
    [
        "",
        " ",
        "\t\n ",
        "\u3000",
        "\x00",
        "bob\x00",
        "\x00bob",
        "bo\x00b",
        "bo\tb",
        "bob\x07admin",
        "bo\x1bb",
        "bob\u200b",  # zero-width space (format character)
        "b\u202eob",  # right-to-left override
        "b\ud800ob",  # lone surrogate
        "x" * (MAX_LOGIN_LENGTH + 1),
        "x" * 10_000,
    ],
    ids=lambda s: repr(s[:12]) + (f"x{len(s)}" if len(s) > 12 else ""),
)
def test_unusable_logins_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidLogin):
        login_key(bad)


def test_longest_allowed_login() -> None:
    assert login_key("x" * MAX_LOGIN_LENGTH) == "x" * MAX_LOGIN_LENGTH


def test_non_text_login_is_rejected() -> None:
    with pytest.raises(InvalidLogin):
        login_key(b"bob")  # type: ignore[arg-type]


def test_display_login_keeps_case_and_strips() -> None:
    assert display_login("  Bob ") == "Bob"
    assert display_login("Jose\u0301") == "Jos\u00e9"


# -- passwords ------------------------------------------------------------------


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher(FAST_HASH)


def test_hash_is_argon2id(hasher: PasswordHasher) -> None:
    hashed = hasher.hash("s3cret password")
    assert hashed.startswith("$argon2id$")
    assert is_argon2_hash(hashed)
    assert "m=1024,t=1,p=1" in hashed
    assert "s3cret" not in hashed


def test_hashes_are_salted(hasher: PasswordHasher) -> None:
    assert hasher.hash("same password") != hasher.hash("same password")


def test_verify_right_and_wrong(hasher: PasswordHasher) -> None:
    hashed = hasher.hash("Correct Horse")
    assert hasher.verify(hashed, "Correct Horse") is True
    assert hasher.verify(hashed, "correct horse") is False
    assert hasher.verify(hashed, "Correct Horse ") is False
    assert hasher.verify(hashed, "") is False


def test_verify_without_a_hash_is_false(hasher: PasswordHasher) -> None:
    assert hasher.verify(None, "anything") is False


@pytest.mark.parametrize("password", ["", " ", "\t\n", "x" * 1025], ids=lambda s: repr(s[:8]))
def test_unusable_passwords_are_refused(hasher: PasswordHasher, password: str) -> None:
    with pytest.raises(InvalidPassword):
        hasher.hash(password)


def test_longest_allowed_password(hasher: PasswordHasher) -> None:
    password = "p" * 1024
    assert hasher.verify(hasher.hash(password), password)


def test_needs_rehash_after_a_parameter_change(hasher: PasswordHasher) -> None:
    hashed = hasher.hash("pw-123")
    assert hasher.needs_rehash(hashed) is False
    stronger = PasswordHasher(HashParameters(time_cost=2, memory_cost_kib=2048, parallelism=1))
    assert stronger.needs_rehash(hashed) is True
    # An old hash still verifies under the new parameters.
    assert stronger.verify(hashed, "pw-123") is True
    assert stronger.needs_rehash(stronger.hash("pw-123")) is False


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "not a hash",
        "$argon2id$",
        "$argon2id$v=19$m=1024,t=1,p=1$c29tZXNhbHQ$",
        "$argon2id$v=19$m=1024,t=1,p=1$YWJj$xyz",
        "$2b$12$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234",
        "{SSHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",
        "pw-123",  # a plaintext "hash" equal to the password never matches
    ],
    ids=repr,
)
def test_garbage_stored_hash_never_verifies(hasher: PasswordHasher, garbage: str) -> None:
    assert hasher.verify(garbage, "pw-123") is False
    assert hasher.needs_rehash(garbage) is True


def test_verify_dummy_never_raises(hasher: PasswordHasher) -> None:
    assert hasher.verify_dummy("seatgate-dummy-password") is None
    assert hasher.verify_dummy("") is None


# -- configuration ----------------------------------------------------------------


def pem(vendor_key: VendorKey) -> str:
    return vendor_key.public_pem()


@pytest.fixture
def valid(vendor_key: VendorKey) -> dict[str, Any]:
    """A full, valid configuration mapping."""
    return {
        "installation_id": INSTALLATION,
        "database_url": "postgresql+psycopg://seatgate@db.example.com/seatgate",
        "license": {
            "issuer": "acme-vendor",
            "public_keys": {"k1": pem(vendor_key)},
            "leeway_seconds": 30,
        },
        "seats": {"assignment": "manual", "reserved_for_admins": 2},
        "passwords": {"argon2_time_cost": 2, "argon2_memory_kib": 4096, "argon2_parallelism": 2},
    }


def test_full_valid_config_loads(valid: dict[str, Any], tmp_path: Path) -> None:
    config = config_from_mapping(valid, tmp_path)
    assert isinstance(config, Config)
    assert config.installation_id == INSTALLATION
    assert config.database_url == "postgresql+psycopg://seatgate@db.example.com/seatgate"
    assert config.license.issuer == "acme-vendor"
    assert set(config.license.public_keys) == {"k1"}
    assert isinstance(config.license.public_keys["k1"], Ed25519PublicKey)
    assert config.license.leeway_seconds == 30
    assert config.seats.assignment == "manual"
    assert config.seats.reserved_for_admins == 2
    assert config.passwords == HashParameters(time_cost=2, memory_cost_kib=4096, parallelism=2)


def test_minimal_config_gets_the_defaults(tmp_path: Path) -> None:
    config = config_from_mapping({"installation_id": INSTALLATION}, tmp_path)
    assert config.database_url == f"sqlite:///{(tmp_path / 'seatgate.db').resolve()}"
    assert config.license.issuer == "seatgate-vendor"
    assert dict(config.license.public_keys) == {}
    assert config.license.leeway_seconds == 60
    assert config.seats.assignment == "auto"
    assert config.seats.reserved_for_admins == 0
    assert config.passwords == HashParameters()


def _set(data: dict[str, Any], dotted: str, value: object) -> None:
    *parents, last = dotted.split(".")
    for name in parents:
        data = data.setdefault(name, {})
    data[last] = value


def _delete(data: dict[str, Any], dotted: str) -> None:
    *parents, last = dotted.split(".")
    for name in parents:
        data = data[name]
    del data[last]


_DELETE = object()

# An EC public key on secp112r1, a curve cryptography cannot load.
UNSUPPORTED_CURVE_PEM = """-----BEGIN PUBLIC KEY-----
MDIwEAYHKoZIzj0CAQYFK4EEAAYDHgAEcb4SlsNmWHbhM68SjfKfF4bw1Ja8Igfn
dIdx7Q==
-----END PUBLIC KEY-----
"""


def _rsa_public_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


BAD_VALUES: list[Any] = [
    # (id, dotted key to change, new value or _DELETE, key the error must name)
    ("missing installation_id", "installation_id", _DELETE, "installation_id"),
    ("empty installation_id", "installation_id", "  ", "installation_id"),
    ("numeric installation_id", "installation_id", 42, "installation_id"),
    ("mysql url", "database_url", "mysql://root@localhost/seatgate", "database_url"),
    ("postgres: scheme", "database_url", "postgres://u@h/db", "database_url"),
    ("sqlite in memory", "database_url", "sqlite:///:memory:", "database_url"),
    ("sqlite no file", "database_url", "sqlite://", "database_url"),
    ("leeway string", "license.leeway_seconds", "60", "license.leeway_seconds"),
    ("leeway negative", "license.leeway_seconds", -1, "license.leeway_seconds"),
    ("leeway boolean", "license.leeway_seconds", True, "license.leeway_seconds"),
    ("leeway float", "license.leeway_seconds", 1.5, "license.leeway_seconds"),
    ("leeway huge", "license.leeway_seconds", 86_400, "license.leeway_seconds"),
    ("issuer empty", "license.issuer", "", "license.issuer"),
    ("license not a mapping", "license", ["k1"], "license"),
    ("public_keys a list", "license.public_keys", ["k1"], "license.public_keys"),
    ("assignment sometimes", "seats.assignment", "sometimes", "seats.assignment"),
    ("assignment boolean", "seats.assignment", True, "seats.assignment"),
    ("reserved negative", "seats.reserved_for_admins", -1, "seats.reserved_for_admins"),
    ("reserved string", "seats.reserved_for_admins", "2", "seats.reserved_for_admins"),
    ("unknown top-level key", "seat", {"assignment": "auto"}, "seat"),
    ("unknown license key", "license.isuer", "acme-vendor", "license.isuer"),
    ("unknown seats key", "seats.reserve_for_admins", 1, "seats.reserve_for_admins"),
    ("unknown passwords key", "passwords.time_cost", 2, "passwords.time_cost"),
    ("argon2 time 0", "passwords.argon2_time_cost", 0, "passwords.argon2_time_cost"),
    ("argon2 memory tiny", "passwords.argon2_memory_kib", 4, "passwords.argon2_memory_kib"),
    ("argon2 memory < 8 x lanes", "passwords.argon2_memory_kib", 8, "passwords.argon2_memory_kib"),
    ("argon2 lanes 0", "passwords.argon2_parallelism", 0, "passwords.argon2_parallelism"),
    ("key file missing", "license.public_keys.k1", "no-such-key.pem", "license.public_keys.k1"),
    (
        "key not PEM",
        "license.public_keys.k1",
        "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n",
        "license.public_keys.k1",
    ),
    ("key empty", "license.public_keys.k1", "", "license.public_keys.k1"),
    ("key a number", "license.public_keys.k1", 17, "license.public_keys.k1"),
    ("kid with slash", "license.public_keys.a/b", "PEM", "license.public_keys.a/b"),
    ("kid with space", "license.public_keys.k 1", "PEM", "license.public_keys.k 1"),
    ("kid empty", "license.public_keys.", "PEM", "license.public_keys."),
]


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [pytest.param(k, v, n, id=i) for i, k, v, n in BAD_VALUES],
)
def test_bad_value_fails_naming_the_key(
    valid: dict[str, Any],
    vendor_key: VendorKey,
    tmp_path: Path,
    key: str,
    value: object,
    named: str,
) -> None:
    data = copy.deepcopy(valid)
    if value is _DELETE:
        _delete(data, key)
    elif key.startswith("license.public_keys."):
        # Replace the whole key set, so the kid itself can contain a dot or slash.
        kid = key[len("license.public_keys.") :]
        data["license"]["public_keys"] = {kid: pem(vendor_key) if value == "PEM" else value}
    else:
        _set(data, key, value)
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(data, tmp_path)
    assert caught.value.key == named
    assert f"`{named}`" in str(caught.value)


def test_rsa_public_key_is_refused(valid: dict[str, Any], tmp_path: Path) -> None:
    valid["license"]["public_keys"] = {"k1": _rsa_public_pem()}
    with pytest.raises(ConfigError, match="Ed25519") as caught:
        config_from_mapping(valid, tmp_path)
    assert caught.value.key == "license.public_keys.k1"


def test_private_key_file_instead_of_public_key_is_refused(
    valid: dict[str, Any], tmp_path: Path
) -> None:
    generate_key(tmp_path / "vendor.pem", "k1")
    valid["license"]["public_keys"] = {"k1": "vendor.pem"}
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(valid, tmp_path)
    assert caught.value.key == "license.public_keys.k1"


def test_public_key_of_an_unsupported_algorithm_fails_naming_the_key(
    valid: dict[str, Any], tmp_path: Path
) -> None:
    valid["license"]["public_keys"] = {"k1": UNSUPPORTED_CURVE_PEM}
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(valid, tmp_path)
    assert caught.value.key == "license.public_keys.k1"


def test_top_level_that_is_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(["installation_id"], tmp_path)
    assert caught.value.key == "(top level)"


def test_postgresql_url_gets_the_psycopg_driver(tmp_path: Path) -> None:
    config = config_from_mapping(
        {"installation_id": "x", "database_url": "postgresql://u@db.example.com:5433/sg"},
        tmp_path,
    )
    assert config.database_url == "postgresql+psycopg://u@db.example.com:5433/sg"
    explicit = config_from_mapping(
        {"installation_id": "x", "database_url": "postgresql+psycopg://u@h/sg"}, tmp_path
    )
    assert explicit.database_url == "postgresql+psycopg://u@h/sg"


def test_absolute_sqlite_path_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "sg.db"
    config = config_from_mapping(
        {"installation_id": "x", "database_url": f"sqlite:///{target}"}, tmp_path / "other"
    )
    assert config.database_url == f"sqlite:///{target}"


# -- load_config: files and relative paths --------------------------------------------


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    def _write(data: object, folder: Path | None = None) -> Path:
        folder = folder or tmp_path / "etc"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "seatgate.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return path

    return _write


def test_relative_paths_are_resolved_against_the_config_folder(
    tmp_path: Path,
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    etc = tmp_path / "etc"
    (etc / "keys").mkdir(parents=True)
    key = generate_key(etc / "keys" / "vendor-k1.pem", "k1")  # writes keys/vendor-k1.pub.pem
    path = write_config(
        {
            "installation_id": INSTALLATION,
            "database_url": "sqlite:///data/seatgate.db",
            "license": {"public_keys": {"k1": "keys/vendor-k1.pub.pem"}},
        },
        etc,
    )
    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    config = load_config(path)

    assert config.database_url == f"sqlite:///{(etc / 'data' / 'seatgate.db').resolve()}"
    loaded = config.license.public_keys["k1"]
    assert loaded.public_bytes_raw() == key.private_key.public_key().public_bytes_raw()
    assert config.source == path.resolve()


def test_relative_config_path_works_from_its_folder(
    tmp_path: Path, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config({"installation_id": INSTALLATION}, tmp_path)
    monkeypatch.chdir(tmp_path)
    config = load_config("seatgate.yaml")
    assert config.database_url == f"sqlite:///{(tmp_path / 'seatgate.db').resolve()}"


def test_key_file_missing_relative_to_the_config_folder(
    tmp_path: Path, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The file exists in the working directory but not beside the config: not found.
    generate_key(tmp_path / "vendor-k1.pem", "k1")
    path = write_config(
        {"installation_id": "x", "license": {"public_keys": {"k1": "vendor-k1.pub.pem"}}},
        tmp_path / "etc",
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == "license.public_keys.k1"


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    assert caught.value.key == "--config"
    assert "nope.yaml" in str(caught.value)


def test_config_that_is_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "seatgate.yaml"
    path.write_text("installation_id: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == "--config"


def test_empty_config_file_names_the_required_key(tmp_path: Path) -> None:
    path = tmp_path / "seatgate.yaml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == "installation_id"


def test_loaded_pem_text_config(
    tmp_path: Path, write_config: Callable[..., Path], valid: dict[str, Any]
) -> None:
    path = write_config(valid)
    config = load_config(path)
    assert config.installation_id == INSTALLATION
    assert config.seats.assignment == "manual"
    assert set(config.license.public_keys) == {"k1"}


def test_the_dummy_hash_is_made_on_first_use_or_when_prepared() -> None:
    from seatgate.accounts.passwords import PasswordHasher

    hasher = PasswordHasher(FAST_HASH)
    assert hasher._dummy_hash is None  # a sync or an import never pays for it
    hasher.verify_dummy("guess")
    made = hasher._dummy_hash
    assert made is not None and made.startswith("$argon2id$")
    hasher.prepare()
    assert hasher._dummy_hash == made
    other = PasswordHasher(FAST_HASH)
    other.prepare()
    assert other._dummy_hash is not None
