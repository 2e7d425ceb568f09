"""``cadena-server serve --tls-cert --tls-key``: HTTPS spoken by the server itself.

A private certificate authority made here with ``cryptography`` signs the
server's certificate; the SDK trusts that authority alone. Everything runs
over real TLS against a real ``cadena-server serve`` process.
"""

from __future__ import annotations

import ipaddress
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench._server import (
    LOOPBACK,
    Liaison,
    RunningServer,
    bootstrap,
    free_port,
    run_command,
    server_command,
    server_env,
)
from client import Client, Credentials
from crypto import LiaisonKeys

pytestmark = pytest.mark.timeout(300)


@dataclass(frozen=True)
class Pki:
    """A certificate authority and a server certificate it signed for 127.0.0.1."""

    ca: Path
    cert: Path
    key: Path

    def context(self) -> ssl.SSLContext:
        """A client context that trusts this authority alone."""
        return ssl.create_default_context(cafile=str(self.ca))


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_pki(directory: Path) -> Pki:
    """Write ``ca.pem``, ``server.pem`` and ``server.key`` (0600) into ``directory``."""
    start = datetime.now(UTC) - timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Cadena test CA"))
          .issuer_name(_name("Cadena test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(start + timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    server = (x509.CertificateBuilder().subject_name(_name("127.0.0.1"))
              .issuer_name(ca.subject).public_key(key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(start).not_valid_after(start + timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName(
                  [x509.IPAddress(ipaddress.ip_address(LOOPBACK)), x509.DNSName("localhost")]),
                  critical=False)
              .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
              .sign(ca_key, hashes.SHA256()))
    pki = Pki(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    pki.ca.write_bytes(_pem(ca))
    pki.cert.write_bytes(_pem(server))
    pki.key.touch(mode=0o600)
    pki.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    directory = tmp_path / "pki"
    directory.mkdir()
    return make_pki(directory)


@contextmanager
def tls_server(env: dict[str, str], pki: Pki, *, workers: int = 1) -> Iterator[RunningServer]:
    """``cadena-server serve --tls-cert --tls-key`` until the block ends; ready when it yields."""
    port = free_port()
    log_path = Path(env["CADENA_DATA_DIR"]) / "server.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [*server_command(), "serve", "--host", LOOPBACK, "--port", str(port),
             "--workers", str(workers), "--tls-cert", str(pki.cert), "--tls-key", str(pki.key)],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    server = RunningServer(process, f"https://{LOOPBACK}:{port}", workers, log_path)
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=server.url, verify=pki.context(), timeout=2) as http:
            while True:
                assert process.poll() is None, server.log_tail()
                assert time.monotonic() < deadline, server.log_tail()  # a hang, not a target
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        yield server
    finally:
        server.stop()


def _bootstrapped(tmp_path: Path, database_url: str | None = None) -> tuple[dict[str, str],
                                                                          Liaison]:
    env = server_env(tmp_path / "data", database_url)
    coordinator = Liaison("coord", LiaisonKeys.generate())
    bootstrap(env, coordinator)
    return env, coordinator


def _sdk_round_trip(server: RunningServer, pki: Pki, coordinator: Liaison) -> None:
    credentials = Credentials(coordinator.id, coordinator.keys)
    with httpx.Client(verify=pki.context()) as http, \
            Client(server.url, http=http, credentials=credentials) as client:
        client.login()
        assert [state.code for state in client.states.list()] == ["CO"]


def test_the_sdk_logs_in_over_tls_trusting_the_servers_ca(tmp_path: Path, pki: Pki) -> None:
    env, coordinator = _bootstrapped(tmp_path)
    with tls_server(env, pki) as server:
        _sdk_round_trip(server, pki, coordinator)
        assert f"serving on {server.url}" in server.log_tail()


def test_two_workers_serve_tls_each_on_its_own_socket(
        tmp_path: Path, pki: Pki, postgres_url: str) -> None:
    env, coordinator = _bootstrapped(tmp_path, postgres_url)
    with tls_server(env, pki, workers=2) as server:
        _sdk_round_trip(server, pki, coordinator)


def test_a_client_that_does_not_trust_the_ca_or_speaks_plain_http_gets_nothing(
        tmp_path: Path, pki: Pki) -> None:
    env, _ = _bootstrapped(tmp_path)
    with tls_server(env, pki) as server:
        with httpx.Client(timeout=5) as default_trust, \
                pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            default_trust.get(f"{server.url}/healthz")
        plain = server.url.replace("https://", "http://")
        with httpx.Client(timeout=5) as http, pytest.raises(httpx.TransportError):
            http.get(f"{plain}/healthz")


def test_a_tls_key_others_may_read_is_refused_before_anything_starts(
        tmp_path: Path, pki: Pki) -> None:
    pki.key.chmod(0o640)
    env = server_env(tmp_path / "data")
    done = run_command(env, ["serve", "--port", str(free_port()), "--tls-cert", str(pki.cert),
                             "--tls-key", str(pki.key)], timeout=60)
    assert done.returncode == 2
    assert f"chmod 600 {pki.key}" in done.stderr
    assert "serving on" not in done.stderr


@pytest.mark.parametrize("case", ["cert-only", "key-only", "someone-elses-key", "not-pem"])
def test_unusable_tls_files_are_a_usage_error(tmp_path: Path, pki: Pki, case: str) -> None:
    other = make_pki(tmp_path)  # another authority's key: does not match pki.cert
    args = {"cert-only": ["--tls-cert", str(pki.cert)],
            "key-only": ["--tls-key", str(pki.key)],
            "someone-elses-key": ["--tls-cert", str(pki.cert), "--tls-key", str(other.key)],
            "not-pem": ["--tls-cert", str(pki.ca.with_name("nothing.pem")), "--tls-key",
                        str(pki.key)]}[case]
    pki.ca.with_name("nothing.pem").write_text("not a certificate\n")
    done = run_command(server_env(tmp_path / "data"),
                       ["serve", "--port", str(free_port()), *args], timeout=60)
    assert done.returncode == 2, done.stderr
    assert "--tls" in done.stderr or "do not load as a pair" in done.stderr
    assert "serving on" not in done.stderr
