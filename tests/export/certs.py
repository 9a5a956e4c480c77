"""Throwaway TLS material for tests, made with the openssl CLI at test time (never committed)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_DAYS = "2"
# SANs for both ways a loopback test may name the server.
_SERVER_EXT = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""
_CLIENT_EXT = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


@dataclass(frozen=True)
class TlsFiles:
    """PEM paths: a CA, a server and a client certificate it signed, and an unrelated CA."""

    ca_cert: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    other_ca_cert: str  # trusts nothing here: verifying the server against it must fail


def make_tls_files(directory: Path) -> TlsFiles:
    """Generate a fresh CA, server and client certificates (P-256 keys) in ``directory``."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the openssl command is needed to generate test certificates")
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=directory)

    def new_ca(name: str) -> None:
        run(
            "req", "-x509", "-new", "-nodes", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", _DAYS,
            "-subj", f"/CN=otelprof test {name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip

    def new_leaf(name: str, extensions: str) -> None:
        (directory / f"{name}.ext").write_text(extensions)
        run(
            "req", "-new", "-nodes", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
        )  # fmt: skip
        run(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", _DAYS,
            "-extfile", f"{name}.ext",
        )  # fmt: skip

    new_ca("ca")
    new_ca("other-ca")
    new_leaf("localhost", _SERVER_EXT)
    new_leaf("client", _CLIENT_EXT)
    return TlsFiles(
        ca_cert=str(directory / "ca.pem"),
        server_cert=str(directory / "localhost.pem"),
        server_key=str(directory / "localhost.key"),
        client_cert=str(directory / "client.pem"),
        client_key=str(directory / "client.key"),
        other_ca_cert=str(directory / "other-ca.pem"),
    )
