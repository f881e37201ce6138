"""Real directory servers on loopback for tests: Samba as an AD DC, and OpenLDAP slapd.

Everything lives in a folder the caller gives (a temp folder); nothing outside it
is written. Both servers run as child processes of the test session and are
stopped by ``stop()``. Needs the Debian packages samba, samba-ad-dc, ldap-utils
and slapd (``scripts/ensure-directory-packages``) and root for ports 389/636.

    tls = make_test_ca(tmp / "tls")
    ad = SambaAD().start(tmp / "samba")          # ldaps://127.0.0.1:636, StartTLS on 389
    ad.create_user("alice", "Alice-pw1", mail="alice@example.com")
    ldap = OpenLDAP().start(tmp / "slapd")       # ldap://127.0.0.1:3890 (StartTLS)
    ldap.add_user("bob", "bob-pw")
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from ldap3 import (
    BASE,
    MODIFY_ADD,
    MODIFY_DELETE,
    MODIFY_REPLACE,
    NONE,
    SIMPLE,
    SUBTREE,
    Connection,
    Server,
    Tls,
)
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

LOOPBACK = "127.0.0.1"
# (DN, attributes) of an entry to add.
_Entry = tuple[str, dict[str, Any]]


class DirectoryServerError(RuntimeError):
    """A test directory server could not be set up, started or driven."""


def missing_binaries(*names: str) -> list[str]:
    """The names (of those given) that are on neither PATH nor /usr/sbin."""
    search = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
    return [name for name in names if shutil.which(name, path=search) is None]


def _binary(name: str) -> str:
    search = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
    found = shutil.which(name, path=search)
    if found is None:
        raise DirectoryServerError(
            f"{name} is not installed (run scripts/ensure-directory-packages)"
        )
    return found


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True when something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _require_free_ports(server: str, ports: Iterable[int]) -> None:
    for port in ports:
        if port_in_use(port):
            raise DirectoryServerError(
                f"cannot start {server}: port {port} on {LOOPBACK} is already in use "
                f"(another directory server? see `ss -ltnp 'sport = :{port}'`; "
                "scripts/ensure-directory-packages stops the Debian-packaged daemons)"
            )


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} not readable)"
    return "\n".join(text.splitlines()[-lines:])


def _run(cmd: Sequence[str], *, what: str, env: Mapping[str, str] | None = None) -> str:
    """Run a command; return its stdout, raise DirectoryServerError with its output on failure."""
    proc = subprocess.run(
        list(cmd),
        check=False,
        capture_output=True,
        text=True,
        env=None if env is None else dict(env),
    )
    if proc.returncode != 0:
        raise DirectoryServerError(
            f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n"
            f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    return proc.stdout


def _terminate(process: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM our own child, wait, SIGKILL if it does not go."""
    if process is None:
        return
    if process.stdin is not None:
        process.stdin.close()
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


# --------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the test CA, a server certificate/key it signed, and an unrelated CA."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    other_ca_cert: Path


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _ca_certificate(key: rsa.RSAPrivateKey, name: str) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def make_test_ca(folder: str | os.PathLike[str]) -> TlsFiles:
    """Write a test CA, a server certificate for localhost/127.0.0.1 and a second, unrelated CA.

    The server certificate has subjectAltName DNS:localhost, IP:127.0.0.1 (and ::1),
    extendedKeyUsage serverAuth, and is valid for 30 days. The key file is mode 0600
    (Samba refuses a TLS key file other users can read).
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    ca_key = _new_key()
    ca_cert = _ca_certificate(ca_key, "seatgate test CA")
    other_cert = _ca_certificate(_new_key(), "unrelated test CA")

    server_key = _new_key()
    now = datetime.datetime.now(datetime.UTC)
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    files = TlsFiles(
        ca_cert=out / "ca.pem",
        server_cert=out / "server.pem",
        server_key=out / "server.key",
        other_ca_cert=out / "other-ca.pem",
    )
    pem = serialization.Encoding.PEM
    files.ca_cert.write_bytes(ca_cert.public_bytes(pem))
    files.other_ca_cert.write_bytes(other_cert.public_bytes(pem))
    files.server_cert.write_bytes(server_cert.public_bytes(pem))
    fd = os.open(files.server_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            server_key.private_bytes(
                pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
            )
        )
    os.chmod(files.server_key, 0o600)
    return files


def ldap3_changes(changes: Mapping[str, Any]) -> dict[str, list[tuple[str, list[Any]]]]:
    """``{attr: value or [values]}`` -> replace, ``{attr: None}`` -> delete the attribute;
    values already in ldap3's format (``[(MODIFY_ADD, [values])]``) pass through."""
    result: dict[str, list[tuple[str, list[Any]]]] = {}
    for attr, value in changes.items():
        if (
            isinstance(value, list)
            and value
            and isinstance(value[0], tuple)
            and value[0][0] in (MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE)
        ):
            result[attr] = value
        elif value is None:
            result[attr] = [(MODIFY_REPLACE, [])]
        else:
            values = list(value) if isinstance(value, list | tuple) else [value]
            result[attr] = [(MODIFY_REPLACE, values)]
    return result


def tls_config(ca_file: str | os.PathLike[str]) -> Tls:
    """ldap3 TLS settings that validate the server certificate against ca_file."""
    return Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(ca_file))


# --------------------------------------------------------------------------- Samba AD


def _unicode_pwd(password: str) -> bytes:
    """The value AD expects in unicodePwd: the quoted password in UTF-16-LE."""
    return f'"{password}"'.encode("utf-16-le")


class SambaAD:
    """Samba 4 as an Active Directory domain controller on 127.0.0.1 (LDAP and the KDC).

    ``start(folder)`` provisions a fresh domain in ``folder`` and runs ``samba -i``
    as a child process. LDAPS on 636 and StartTLS on 389 use a test CA
    (``ca_file``); plain simple binds are refused, as by real AD.
    """

    realm = "SEATGATE.TEST"
    domain = "SEATGATE"
    dns_domain = "seatgate.test"
    base_dn = "DC=seatgate,DC=test"
    users_dn = "CN=Users,DC=seatgate,DC=test"
    admin_dn = "CN=Administrator,CN=Users,DC=seatgate,DC=test"
    admin_upn = "Administrator@SEATGATE.TEST"
    admin_password = "Passw0rd!x"
    host = LOOPBACK
    ldap_port = 389
    ldaps_port = 636
    url_starttls = "ldap://127.0.0.1:389"
    url_ldaps = "ldaps://127.0.0.1:636"
    # The LDAP service also listens on the global catalog ports; the KDC on 88.
    ports = (389, 636, 3268, 3269, 88)
    binaries = ("samba", "samba-tool")
    # Filter for user accounts (objectClass=user alone also matches computers).
    person_filter = "(&(objectCategory=person)(objectClass=user))"

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.tls: TlsFiles | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None
        # Seconds per start-up phase: tls, provision, passwordsettings, samba.
        self.timings: dict[str, float] = {}

    # -- life cycle

    @property
    def smb_conf(self) -> Path:
        return self._folder / "etc" / "smb.conf"

    @property
    def sam_ldb(self) -> Path:
        return self._folder / "private" / "sam.ldb"

    @property
    def log_file(self) -> Path:
        return self._folder / "samba.out"

    @property
    def ca_file(self) -> Path:
        return self._tls.ca_cert

    @property
    def other_ca_file(self) -> Path:
        return self._tls.other_ca_cert

    @property
    def _folder(self) -> Path:
        if self.folder is None:
            raise DirectoryServerError("SambaAD has not been started")
        return self.folder

    @property
    def _tls(self) -> TlsFiles:
        if self.tls is None:
            raise DirectoryServerError("SambaAD has not been started")
        return self.tls

    def start(
        self, folder: str | os.PathLike[str], *, tls: TlsFiles | None = None, timeout: float = 60.0
    ) -> SambaAD:
        """Provision SEATGATE.TEST in ``folder`` (must be empty or absent) and start samba."""
        started = time.monotonic()
        samba, samba_tool = _binary("samba"), _binary("samba-tool")
        _require_free_ports("Samba AD", self.ports)
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "run").mkdir(exist_ok=True)
        self.tls = tls or make_test_ca(self.folder / "tls")
        mark = time.monotonic()
        self.timings = {"tls": mark - started}
        options = {
            "interfaces": "lo",
            "bind interfaces only": "yes",
            # The KDC too: tests/ldap/test_kerberos.py gets tickets from it.
            "server services": "ldap kdc",
            "kdc default domain supported enctypes": (
                "aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96"
            ),
            "pid directory": str(self.folder / "run"),
            "log file": str(self.folder / "log.%m"),
            "tls enabled": "yes",
            "tls keyfile": str(self.tls.server_key),
            "tls certfile": str(self.tls.server_cert),
            "tls cafile": str(self.tls.ca_cert),
            # Test data only: do not fsync the databases (much faster bulk adds).
            "ldb:nosync": "true",
        }
        _run(
            [
                samba_tool,
                "domain",
                "provision",
                f"--targetdir={self.folder}",
                f"--realm={self.realm}",
                f"--domain={self.domain}",
                "--server-role=dc",
                "--dns-backend=NONE",
                "--use-rfc2307",
                "--host-name=dc1",
                f"--adminpass={self.admin_password}",
                *(f"--option={key}={value}" for key, value in options.items()),
            ],
            what="samba-tool domain provision",
        )
        self.timings["provision"], mark = time.monotonic() - mark, time.monotonic()
        # Test-friendly password policy: any password, reusable, changeable at once.
        self.samba_tool(
            "domain",
            "passwordsettings",
            "set",
            "--complexity=off",
            "--history-length=0",
            "--min-pwd-length=0",
            "--min-pwd-age=0",
            "--max-pwd-age=0",
            online=False,
        )
        self.timings["passwordsettings"], mark = time.monotonic() - mark, time.monotonic()
        with self.log_file.open("wb") as log:
            # -i: foreground, and exit on EOF on stdin: our pipe closes when this
            # process ends, however it ends, so no samba outlives the tests.
            # -M single: one process (one pid to stop).
            self.process = subprocess.Popen(
                [samba, "-i", "-M", "single", "-s", str(self.smb_conf)],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        self.timings["samba"] = time.monotonic() - mark
        self.startup_seconds = time.monotonic() - started
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error = "no attempt"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise DirectoryServerError(
                    f"samba exited with status {self.process.returncode} during start-up; "
                    f"log tail ({self.log_file}):\n{_tail(self.log_file)}"
                )
            try:
                self.connect(ldaps=False).unbind()
                return
            except (LDAPException, OSError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.25)
        raise DirectoryServerError(
            f"samba did not accept a StartTLS bind on {self.url_starttls} within {timeout:.0f} s "
            f"(last error: {last_error}); log tail ({self.log_file}):\n{_tail(self.log_file)}"
        )

    def stop(self) -> None:
        """Stop samba (SIGTERM, then SIGKILL after 10 s). The folder is left as it is."""
        _terminate(self.process)
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- connections

    def server(
        self, *, ldaps: bool = True, ca_file: str | os.PathLike[str] | None = None
    ) -> Server:
        """An ldap3 Server for LDAPS (636) or plain/StartTLS (389), validating with ca_file."""
        tls = tls_config(ca_file or self.ca_file)
        if ldaps:
            return Server(self.host, port=self.ldaps_port, use_ssl=True, tls=tls, get_info=NONE)
        return Server(self.host, port=self.ldap_port, tls=tls, get_info=NONE)

    def connect(
        self,
        user: str | None = None,
        password: str | None = None,
        *,
        ldaps: bool = True,
        ca_file: str | os.PathLike[str] | None = None,
    ) -> Connection:
        """A bound ldap3 connection (default: Administrator over LDAPS); raises on failure."""
        conn = Connection(
            self.server(ldaps=ldaps, ca_file=ca_file),
            user=user or self.admin_upn,
            password=self.admin_password if password is None else password,
            authentication=SIMPLE,
            raise_exceptions=True,
            receive_timeout=30,
        )
        conn.open()
        if not ldaps:
            conn.start_tls()
        conn.bind()
        return conn

    # -- samba-tool

    def samba_tool(self, *args: str, online: bool = True) -> str:
        """Run ``samba-tool ARGS``; online: against the running server over LDAP (NTLM auth,
        signed), else directly on private/sam.ldb. Returns stdout; raises on failure."""
        cmd = [_binary("samba-tool"), *args, "-s", str(self.smb_conf)]
        if online:
            cmd += [
                "-H",
                f"ldap://{self.host}",
                f"-U{self.domain}\\Administrator%{self.admin_password}",
                "--use-kerberos=off",
            ]
        else:
            cmd += ["-H", str(self.sam_ldb)]
        return _run(cmd, what=f"samba-tool {' '.join(args[:2])}")

    # -- lookups

    def find(self, filter_: str, attributes: Sequence[str] = ("distinguishedName",)) -> list[Any]:
        """Entries (searchResEntry only) matching filter_ under base_dn, read as Administrator."""
        conn = self.connect()
        try:
            conn.search(self.base_dn, filter_, SUBTREE, attributes=list(attributes))
            return [entry for entry in conn.response if entry.get("type") == "searchResEntry"]
        finally:
            conn.unbind()

    def account_dn(self, name: str) -> str:
        """The DN of the user or group whose sAMAccountName is ``name``."""
        found = self.find(f"(sAMAccountName={escape_filter_chars(name)})")
        if len(found) != 1:
            raise DirectoryServerError(f"{len(found)} accounts named {name!r} in {self.base_dn}")
        return str(found[0]["dn"])

    user_dn = account_dn
    group_dn = account_dn

    def modify(self, name: str, changes: Mapping[str, Any]) -> None:
        """Change attributes of the account ``name`` as Administrator (see ldap3_changes)."""
        dn = self.account_dn(name)
        conn = self.connect()
        try:
            conn.modify(dn, ldap3_changes(changes))
        finally:
            conn.unbind()

    def user_attributes(self, name: str, attributes: Sequence[str]) -> dict[str, Any]:
        """Raw attribute values (lists of bytes) of the account named ``name``."""
        found = self.find(f"(sAMAccountName={escape_filter_chars(name)})", attributes)
        if len(found) != 1:
            raise DirectoryServerError(f"{len(found)} accounts named {name!r} in {self.base_dn}")
        return dict(found[0]["raw_attributes"])

    def upn(self, name: str) -> str:
        """The UPN to bind as for the account ``name`` (name@SEATGATE.TEST)."""
        return f"{name}@{self.realm}"

    # -- users and groups (samba-tool against the running server)

    def create_ou(self, name: str) -> str:
        """Create OU=name directly under the base DN; return its DN."""
        self.samba_tool("ou", "create", f"OU={name}")
        return f"OU={name},{self.base_dn}"

    def create_user(
        self,
        name: str,
        password: str,
        given: str | None = None,
        surname: str | None = None,
        mail: str | None = None,
        ou: str | None = None,
    ) -> str:
        """``samba-tool user create``: an enabled account (userAccountControl 512).

        ``ou`` is an existing OU's name (see create_ou) or relative DN ("OU=a,OU=b").
        Returns the new DN.
        """
        args = ["user", "create", name, password]
        if given:
            args.append(f"--given-name={given}")
        if surname:
            args.append(f"--surname={surname}")
        if mail:
            args.append(f"--mail-address={mail}")
        if ou:
            args.append(f"--userou={ou if '=' in ou else 'OU=' + ou}")
        self.samba_tool(*args)
        return self.user_dn(name)

    def disable_user(self, name: str) -> None:
        self.samba_tool("user", "disable", name)

    def enable_user(self, name: str) -> None:
        self.samba_tool("user", "enable", name)

    def delete_user(self, name: str) -> None:
        self.samba_tool("user", "delete", name)

    def set_password(self, name: str, password: str) -> None:
        self.samba_tool("user", "setpassword", name, f"--newpassword={password}")

    def rename_user(self, old: str, new_sam: str, *, new_cn: str | None = None) -> str:
        """Rename the logon: sAMAccountName and UPN become ``new_sam`` (objectGUID is kept).

        With ``new_cn`` the CN, and so the DN, changes too. Returns the (new) DN.
        """
        args = ["user", "rename", old, f"--samaccountname={new_sam}"]
        args.append(f"--upn={new_sam}@{self.dns_domain}")
        if new_cn:
            args.append(f"--force-new-cn={new_cn}")
        self.samba_tool(*args)
        return self.user_dn(new_sam)

    def create_group(self, name: str) -> str:
        """A global security group in CN=Users; returns its DN."""
        self.samba_tool("group", "add", name)
        return self.account_dn(name)

    def add_members(self, group: str, members: Sequence[str]) -> None:
        """Add accounts/groups (by sAMAccountName) to ``group``."""
        self.samba_tool("group", "addmembers", group, ",".join(members))

    def remove_members(self, group: str, members: Sequence[str]) -> None:
        self.samba_tool("group", "removemembers", group, ",".join(members))

    # -- bulk

    def create_users_bulk(
        self,
        prefix: str,
        count: int,
        password: str,
        *,
        ou_dn: str | None = None,
        mail_domain: str | None = "example.com",
        hash_locally: bool = True,
    ) -> list[str]:
        """Add ``count`` enabled users ``{prefix}{i:05d}`` fast; return their sAMAccountNames.

        Each user has userAccountControl 512, a UPN ``name@seatgate.test``, givenName,
        sn, displayName, mail, pwdLastSet = now, and binds at once with ``password``.

        Samba spends ~20-30 ms of CPU per password (Kerberos AES key derivation in
        heimdal's unaccelerated SHA-1), so adding users over LDAP with unicodePwd
        runs at ~30 users/s. By default (``hash_locally``) the entries are added
        in ONE ldb transaction straight into private/sam.ldb (Samba's own Python
        bindings, run by the system python3, while the server runs) with only the
        NT hash as unicodePwd (DSDB "bypass password hash" control): ~400 users/s.
        Those users have no Kerberos keys; LDAP simple binds and NTLM work.
        ``hash_locally=False`` adds them over LDAPS (ldap3, pipelined) instead.
        """
        names = [f"{prefix}{i:05d}" for i in range(count)]
        if names and len(names[-1]) > 20:
            raise ValueError(f"sAMAccountName {names[-1]!r} is longer than 20 characters")
        container = ou_dn or self.users_dn
        entries: list[_Entry] = []
        for index, name in enumerate(names):
            attributes: dict[str, Any] = {
                "sAMAccountName": name,
                "userPrincipalName": f"{name}@{self.dns_domain}",
                "givenName": "Bulk",
                "sn": f"User {index}",
                "displayName": f"Bulk User {index}",
                "userAccountControl": "512",
            }
            if mail_domain:
                attributes["mail"] = f"{name}@{mail_domain}"
            entries.append((f"CN={name},{container}", attributes))
        if hash_locally:
            self._add_users_to_sam_ldb(entries, password)
        else:
            self._add_users_over_ldaps(entries, password)
        return names

    def _add_users_to_sam_ldb(self, entries: list[_Entry], password: str) -> None:
        # pwdLastSet must be set explicitly: with the bypass control it stays 0
        # ("must change password": binds fail with data 773).
        now_filetime = int((time.time() + 11_644_473_600) * 10_000_000)
        spec = {
            "smb_conf": str(self.smb_conf),
            "sam_ldb": str(self.sam_ldb),
            "password": password,
            "entries": [
                {
                    "dn": dn,
                    "attributes": {
                        "objectClass": ["top", "person", "user"],
                        "pwdLastSet": str(now_filetime),
                        **attributes,
                    },
                }
                for dn, attributes in entries
            ],
        }
        proc = subprocess.run(
            [_samba_python(), "-c", _SAMDB_BULK_ADD],
            check=False,
            input=json.dumps(spec),
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise DirectoryServerError(
                f"bulk add into {self.sam_ldb} failed (exit {proc.returncode}):\n"
                f"{proc.stderr[-3000:]}"
            )

    def _add_users_over_ldaps(self, entries: list[_Entry], password: str) -> None:
        # Synchronous: ldap3's ASYNC strategy over TLS is not thread-safe, and the
        # server's password hashing dominates anyway.
        pwd = _unicode_pwd(password)
        conn = self.connect()
        try:
            for dn, attributes in entries:
                conn.add(dn, ["top", "person", "user"], {**attributes, "unicodePwd": pwd})
        finally:
            conn.unbind()


# Run by the system python3 (Samba's bindings); reads a JSON spec on stdin.
_SAMDB_BULK_ADD = """
import json, sys
import ldb
from samba import dsdb
from samba.auth import system_session
from samba.credentials import Credentials
from samba.param import LoadParm
from samba.samdb import SamDB

spec = json.load(sys.stdin)
lp = LoadParm()
lp.load(spec["smb_conf"])
samdb = SamDB(url=spec["sam_ldb"], session_info=system_session(), lp=lp)
creds = Credentials()
creds.set_password(spec["password"])
nt_hash = creds.get_nt_hash()
controls = ["local_oid:%s:0" % dsdb.DSDB_CONTROL_BYPASS_PASSWORD_HASH_OID]
samdb.transaction_start()
try:
    for entry in spec["entries"]:
        msg = ldb.Message(ldb.Dn(samdb, entry["dn"]))
        for name, value in entry["attributes"].items():
            values = value if isinstance(value, list) else [value]
            msg[name] = ldb.MessageElement(values, ldb.FLAG_MOD_ADD, name)
        msg["unicodePwd"] = ldb.MessageElement([nt_hash], ldb.FLAG_MOD_ADD, "unicodePwd")
        samdb.add(msg, controls=controls)
except BaseException:
    samdb.transaction_cancel()
    raise
samdb.transaction_commit()
"""


def _samba_python() -> str:
    """The Python that has Samba's bindings (Debian: /usr/bin/python3, package python3-samba)."""
    for candidate in ("/usr/bin/python3", shutil.which("python3")):
        if candidate and Path(candidate).exists():
            probe = subprocess.run(
                [candidate, "-c", "import samba.samdb"],
                check=False,
                capture_output=True,
                text=True,
            )
            if probe.returncode == 0:
                return candidate
    raise DirectoryServerError("no python3 with Samba's bindings (python3-samba) found")


# --------------------------------------------------------------------------- OpenLDAP


def ssha(password: str) -> str:
    """An RFC 2307 {SSHA} userPassword value."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324 - the LDAP scheme
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


_SLAPD_CONF = """\
# seatgate test server (generated by tests/ldap/servers.py)
include         {schema}/core.schema
include         {schema}/cosine.schema
include         {schema}/nis.schema
include         {schema}/inetorgperson.schema

modulepath      {modules}
moduleload      back_mdb
moduleload      memberof
moduleload      refint

pidfile         {folder}/slapd.pid
argsfile        {folder}/slapd.args

# DN + empty password = successful *anonymous* bind (like AD): the trap a
# directory login must refuse before it binds.
allow bind_anon_dn

TLSCACertificateFile   {ca}
TLSCertificateFile     {cert}
TLSCertificateKeyFile  {key}

# Frontend ACLs (appended to the database's): the root DSE and schema are public.
access to dn.base="" by * read
access to dn.base="cn=Subschema" by * read

database        mdb
maxsize         1073741824
suffix          "{suffix}"
rootdn          "{rootdn}"
rootpw          {rootpw}
directory       {folder}/data
dbnosync

index objectClass eq
index uid,cn,mail eq
index member,memberOf eq
index entryUUID eq

# AD-like cap for everybody but the rootdn.
{limits}

access to attrs=userPassword
    by dn.exact="{service_dn}" read
    by self write
    by anonymous auth
    by * none
access to *
    by dn.exact="{service_dn}" read
    by users read
    by * none

overlay memberof
memberof-group-oc       groupOfNames
memberof-member-ad      member
memberof-memberof-ad    memberOf
memberof-refint         TRUE

overlay refint
refint_attributes member
"""


class OpenLDAP:
    """OpenLDAP slapd on 127.0.0.1 (default port 3890, StartTLS with the test CA).

    ``start(folder)`` writes slapd.conf, loads the base entries with slapadd and
    runs slapd as a child process. Tree: dc=seatgate,dc=test with ou=people
    (inetOrgPerson, uid=...), ou=groups (groupOfNames, memberOf overlay) and the
    service account cn=svc-seatgate,dc=seatgate,dc=test, which can read everything.
    Non-root searches are capped at ``size_limit`` entries; with
    ``paged_exempt=False`` paged searches are capped too (sizeLimitExceeded).
    """

    base_dn = "dc=seatgate,dc=test"
    people_dn = "ou=people,dc=seatgate,dc=test"
    groups_dn = "ou=groups,dc=seatgate,dc=test"
    admin_dn = "cn=admin,dc=seatgate,dc=test"
    admin_password = "Admin-Passw0rd"
    service_dn = "cn=svc-seatgate,dc=seatgate,dc=test"
    service_password = "Svc-Passw0rd"
    host = LOOPBACK
    binaries = ("slapd", "slapadd", "ldapwhoami")
    schema_dir = Path("/etc/ldap/schema")
    module_dir = Path("/usr/lib/ldap")

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.tls: TlsFiles | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 3890
        self.size_limit: int | None = 1000
        self.paged_exempt = True
        self.startup_seconds: float | None = None

    @property
    def url(self) -> str:
        return f"ldap://{self.host}:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self._tls.ca_cert

    @property
    def other_ca_file(self) -> Path:
        return self._tls.other_ca_cert

    @property
    def _tls(self) -> TlsFiles:
        if self.tls is None:
            raise DirectoryServerError("OpenLDAP has not been started")
        return self.tls

    @property
    def _folder(self) -> Path:
        if self.folder is None:
            raise DirectoryServerError("OpenLDAP has not been started")
        return self.folder

    @property
    def conf_file(self) -> Path:
        return self._folder / "slapd.conf"

    @property
    def log_file(self) -> Path:
        return self._folder / "slapd.log"

    def start(
        self,
        folder: str | os.PathLike[str],
        port: int = 3890,
        size_limit: int | None = 1000,
        *,
        paged_exempt: bool = True,
        tls: TlsFiles | None = None,
        timeout: float = 15.0,
    ) -> OpenLDAP:
        """Configure, load and start slapd in ``folder`` on 127.0.0.1:``port``.

        ``size_limit``: soft and hard size limit for every bound user except the
        rootdn (None: slapd's default, 500). ``paged_exempt``: paged searches may
        return any total (size.prtotal=unlimited); False caps them at the hard limit.
        """
        started = time.monotonic()
        slapadd = _binary("slapadd")
        _require_free_ports("OpenLDAP", [port])
        self.folder = Path(folder)
        self.port, self.size_limit, self.paged_exempt = port, size_limit, paged_exempt
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        self.tls = tls or make_test_ca(self.folder / "tls")
        if size_limit is None:
            limits = "# (slapd default size limit: 500)"
        else:
            limits = f"limits users size.soft={size_limit} size.hard={size_limit}"
            if paged_exempt:
                limits += " size.prtotal=unlimited"
        self.conf_file.write_text(
            _SLAPD_CONF.format(
                schema=self.schema_dir,
                modules=self.module_dir,
                folder=self.folder,
                ca=self.tls.ca_cert,
                cert=self.tls.server_cert,
                key=self.tls.server_key,
                suffix=self.base_dn,
                rootdn=self.admin_dn,
                rootpw=ssha(self.admin_password),
                service_dn=self.service_dn,
                limits=limits,
            )
        )
        base_ldif = self.folder / "base.ldif"
        base_ldif.write_text(
            f"dn: {self.base_dn}\nobjectClass: top\nobjectClass: dcObject\n"
            "objectClass: organization\no: seatgate test\ndc: seatgate\n\n"
            f"dn: {self.people_dn}\nobjectClass: organizationalUnit\nou: people\n\n"
            f"dn: {self.groups_dn}\nobjectClass: organizationalUnit\nou: groups\n\n"
            f"dn: {self.service_dn}\nobjectClass: organizationalRole\n"
            "objectClass: simpleSecurityObject\ncn: svc-seatgate\n"
            f"description: seatgate directory sync (read-only)\n"
            f"userPassword: {ssha(self.service_password)}\n"
        )
        _run([slapadd, "-q", "-f", str(self.conf_file), "-l", str(base_ldif)], what="slapadd")
        self.launch(timeout, new_log=True)
        self.startup_seconds = time.monotonic() - started
        return self

    def launch(self, timeout: float = 15.0, *, new_log: bool = False) -> None:
        """Run slapd on the configured, loaded database and wait until it answers a bind.

        :meth:`start` calls it once; a test or benchmark that stopped slapd
        (or loaded more entries with slapadd) calls it again on the same data.
        """
        slapd = _binary("slapd")
        # setpriv --pdeathsig: slapd gets SIGTERM when this process ends, however it ends.
        setpriv = shutil.which("setpriv")
        guard = [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []
        with self.log_file.open("wb" if new_log else "ab") as log:
            # -d 0: stay in the foreground (a child we can signal), log only errors.
            self.process = subprocess.Popen(
                [*guard, slapd, "-d", "0", "-h", f"{self.url}/", "-f", str(self.conf_file)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error = "no attempt"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise DirectoryServerError(
                    f"slapd exited with status {self.process.returncode} during start-up; "
                    f"log ({self.log_file}):\n{_tail(self.log_file)}"
                )
            try:
                self.connect().unbind()
                return
            except (LDAPException, OSError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
        raise DirectoryServerError(
            f"slapd did not accept a StartTLS bind on {self.url} within {timeout:.0f} s "
            f"(last error: {last_error}); log ({self.log_file}):\n{_tail(self.log_file)}"
        )

    def stop(self) -> None:
        """Stop slapd (SIGTERM to our child, SIGKILL after 10 s)."""
        _terminate(self.process)
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- connections

    def server(self, *, ca_file: str | os.PathLike[str] | None = None) -> Server:
        return Server(
            self.host, port=self.port, tls=tls_config(ca_file or self.ca_file), get_info=NONE
        )

    def connect(
        self,
        user: str | None = None,
        password: str | None = None,
        *,
        start_tls: bool = True,
        ca_file: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> Connection:
        """A bound ldap3 connection (default: rootdn, StartTLS); raises on failure."""
        settings: dict[str, Any] = {"raise_exceptions": True, "receive_timeout": 30, **options}
        conn = Connection(
            self.server(ca_file=ca_file),
            user=user or self.admin_dn,
            password=self.admin_password if password is None else password,
            authentication=SIMPLE,
            **settings,
        )
        conn.open()
        if start_tls:
            conn.start_tls()
        conn.bind()
        return conn

    def ldapwhoami(self, dn: str, password: str) -> subprocess.CompletedProcess[str]:
        """Raw ``ldapwhoami -x -ZZ -D dn -w password`` (libldap, not ldap3)."""
        env = dict(os.environ, LDAPTLS_CACERT=str(self.ca_file), LDAPTLS_REQCERT="demand")
        return subprocess.run(
            [_binary("ldapwhoami"), "-x", "-ZZ", "-H", self.url, "-D", dn, "-w", password],
            check=False,
            capture_output=True,
            text=True,
            env=env,
        )

    # -- entries

    def user_dn(self, uid: str) -> str:
        return f"uid={uid},{self.people_dn}"

    def group_dn(self, cn: str) -> str:
        return f"cn={cn},{self.groups_dn}"

    def _person(
        self, uid: str, password: str, cn: str | None, mail: str | None, hash_password: bool
    ) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "uid": uid,
            "cn": cn or uid,
            "sn": (cn or uid).split()[-1],
            "userPassword": ssha(password) if hash_password else password,
        }
        if mail:
            attributes["mail"] = mail
        return attributes

    def add_user(
        self,
        uid: str,
        password: str,
        cn: str | None = None,
        mail: str | None = None,
        *,
        hash_password: bool = True,
    ) -> str:
        """An inetOrgPerson uid=...,ou=people (entryUUID is assigned by slapd). Returns its DN."""
        conn = self.connect()
        try:
            conn.add(
                self.user_dn(uid),
                ["inetOrgPerson"],
                self._person(uid, password, cn, mail, hash_password),
            )
        finally:
            conn.unbind()
        return self.user_dn(uid)

    def delete_user(self, uid: str) -> None:
        conn = self.connect()
        try:
            conn.delete(self.user_dn(uid))
        finally:
            conn.unbind()

    def rename_user(self, old_uid: str, new_uid: str) -> str:
        """modify_dn to uid=new_uid (the uid value follows; entryUUID is kept). Returns new DN."""
        conn = self.connect()
        try:
            conn.modify_dn(self.user_dn(old_uid), f"uid={new_uid}", delete_old_dn=True)
        finally:
            conn.unbind()
        return self.user_dn(new_uid)

    def modify(self, uid: str, changes: Mapping[str, Any]) -> None:
        """Change attributes of uid: ``{attr: value or [values]}`` replaces, ``None`` deletes.

        ldap3's own format (``{attr: [(MODIFY_ADD, [values])]}``) is passed through.
        """
        self._modify(self.user_dn(uid), changes)

    def _modify(self, dn: str, changes: Mapping[str, Any]) -> None:
        conn = self.connect()
        try:
            conn.modify(dn, ldap3_changes(changes))
        finally:
            conn.unbind()

    def add_group(self, cn: str, members: Sequence[str]) -> str:
        """A groupOfNames in ou=groups. ``members``: uids or full DNs (at least one:
        groupOfNames requires a member). Returns the group DN."""
        if not members:
            raise ValueError("groupOfNames needs at least one member")
        dns = [m if "=" in m else self.user_dn(m) for m in members]
        conn = self.connect()
        try:
            conn.add(self.group_dn(cn), ["groupOfNames"], {"cn": cn, "member": dns})
        finally:
            conn.unbind()
        return self.group_dn(cn)

    def add_members(self, cn: str, members: Sequence[str]) -> None:
        """Add uids (or DNs) to the group ``cn``."""
        dns = [m if "=" in m else self.user_dn(m) for m in members]
        self._modify(self.group_dn(cn), {"member": [(MODIFY_ADD, dns)]})

    def remove_members(self, cn: str, members: Sequence[str]) -> None:
        """Remove uids (or DNs) from the group ``cn`` (not the last one: groupOfNames)."""
        dns = [m if "=" in m else self.user_dn(m) for m in members]
        self._modify(self.group_dn(cn), {"member": [(MODIFY_DELETE, dns)]})

    def add_users_bulk(
        self, prefix: str, count: int, password: str, *, mail_domain: str | None = "example.com"
    ) -> list[str]:
        """Add ``count`` users ``{prefix}{i:05d}`` over one connection; return their uids.

        Synchronous adds as the rootdn over StartTLS (ldap3's ASYNC strategy over TLS
        is not safe: its receiver thread and the sender share one SSL object).
        """
        uids = [f"{prefix}{i:05d}" for i in range(count)]
        hashed = ssha(password)  # one salt for all: hashing is not what is being tested
        conn = self.connect()
        try:
            for uid in uids:
                attributes = self._person(uid, password, None, None, True)
                attributes["userPassword"] = hashed
                if mail_domain:
                    attributes["mail"] = f"{uid}@{mail_domain}"
                conn.add(self.user_dn(uid), ["inetOrgPerson"], attributes)
        finally:
            conn.unbind()
        return uids

    def entry(self, dn: str, attributes: Sequence[str]) -> dict[str, Any]:
        """The attributes the entry has (of those asked), read as the rootdn.

        ``{name: [values]}`` (ldap3 entry_attributes_as_dict without empty lists);
        raises LDAPNoSuchObjectResult when there is no such entry.
        """
        conn = self.connect()
        try:
            conn.search(dn, "(objectClass=*)", BASE, attributes=list(attributes))
            found = conn.entries[0].entry_attributes_as_dict
            return {name: values for name, values in found.items() if values}
        finally:
            conn.unbind()
