"""TLS for the local broker's client listener (SASL_SSL): a private CA and the broker's
certificate for 127.0.0.1, made with `cryptography`, the broker's key and chain as a PEM keystore.

Made once per broker workdir; clients trust the CA file (KAFKA_CA_FILE), as on a cluster they
trust Strimzi's cluster CA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True)
class BrokerCertificates:
    ca_file: Path  # the CA certificate clients trust
    keystore: Path  # the broker's PKCS#8 key, its certificate and the CA's (PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "guichet unique (local)"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def broker_certificates(directory: Path) -> BrokerCertificates:
    """The CA and the broker's keystore in `directory`, made if missing."""
    found = BrokerCertificates(directory / "ca.pem", directory / "broker-keystore.pem")
    if found.ca_file.exists() and found.keystore.exists():
        return found
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("guichet local Kafka CA"))
        .issuer_name(_name("guichet local Kafka CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [x509.ExtendedKeyUsageOID.SERVER_AUTH, x509.ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    found.keystore.touch(mode=0o600)
    found.keystore.write_bytes(key_pem + cert.public_bytes(pem) + ca.public_bytes(pem))
    found.ca_file.write_bytes(ca.public_bytes(pem))
    return found
