"""Hubs and venue agents in the test process: settings, pairing, and waiting on their links."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from helpers import POS_API_KEY, POS_WEBHOOK_SECRET
from pydantic import SecretStr

from pos_demo.simulator import RunningSimulator
from posintegrator.cloud.receiver import CloudReceiver
from posintegrator.cloud.signatures import generate_secret
from posintegrator.runtime.host import Host
from posintegrator.settings import (
    ApiSettings,
    CloudSettings,
    ConnectionSettings,
    HostSettings,
    StoreSettings,
)
from posintegrator.testing.local import LINK, pair_agent, running_agent
from posintegrator.testing.local import agent_settings as local_agent_settings

#: Pairing an agent as a plugin's own tests do; ``running_agent`` is theirs too.
pair = pair_agent
__all__ = ["agent_settings", "hub_and_receiver", "hub_settings", "pair", "running_agent"]


def hub_settings(
    data: Path, receiver: CloudReceiver, secret: str, token: str, venues: dict[str, str]
) -> HostSettings:
    """A hub serving each venue (connection name -> its location) through an agent."""
    return HostSettings(
        api=ApiSettings(host="127.0.0.1", port=0, token=SecretStr(token)),
        store=StoreSettings(path=data / "hub.db", synchronous="NORMAL"),
        cloud=CloudSettings(webhook_url=receiver.url, webhook_secrets=[SecretStr(secret)]),
        link=LINK,
        connections=[
            ConnectionSettings(name=name, plugin="demo", locations=[location], placement="local")
            for name, location in venues.items()
        ],
    )


def agent_settings(
    data: Path, hub_url: str, simulator: RunningSimulator, location: str, **extra: Any
) -> HostSettings:
    """A venue agent serving ``location`` with the demo POS ``simulator``."""
    pos = ConnectionSettings(
        name="pos",
        plugin="demo",
        locations=[location],
        placement=extra.pop("placement", "local"),
        status_source="webhook",
        menu_sync_seconds=3600,
        settings={
            "base_url": simulator.url,
            "api_key": POS_API_KEY,
            "webhook_secret": POS_WEBHOOK_SECRET,
        },
    )
    return local_agent_settings(data, hub_url, pos, **extra)


@asynccontextmanager
async def hub_and_receiver(
    data: Path, venues: dict[str, str]
) -> AsyncIterator[tuple[Host, CloudReceiver, str]]:
    """A started hub with its cloud receiver, and its API token."""
    secret = generate_secret()
    receiver = CloudReceiver([secret])
    await receiver.start()
    token = secrets.token_urlsafe(16)
    hub = Host(hub_settings(data, receiver, secret, token, venues))
    await hub.start()
    try:
        yield hub, receiver, token
    finally:
        await hub.stop(grace_seconds=2.0)
        await receiver.stop()


def make_tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A private certificate authority and a certificate it signed for 127.0.0.1: the CA's
    file, the server's certificate and its key (PEM)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "posintegrator test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = folder / "ca.pem"
    cert_file = folder / "server.pem"
    key_file = folder / "server-key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file
