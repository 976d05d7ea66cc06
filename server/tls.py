"""The HTTPS listener's SSLContext: our certificate, TLS 1.2+, client certificates optional."""

from __future__ import annotations

import ssl

from cryptography.hazmat.primitives.serialization import Encoding

from ca.errors import ConfigError
from ca.service import CertificateAuthority
from protocols.registry import PROTOCOLS
from server.config import ServerConfig


def client_anchor_files(config: ServerConfig) -> list[str]:
    """The external client-certificate anchors every enabled protocol names (EST: IDevID CAs)."""
    files: list[str] = []
    for name in config.protocols:
        spec = PROTOCOLS.get(name)
        settings = config.protocol_settings.get(name)
        if spec is not None and settings is not None:
            files.extend(spec.tls_client_anchors(settings))
    return files


def server_context(config: ServerConfig, ca: CertificateAuthority) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # EST-12: no TLS 1.0/1.1
    load_certificate(ctx, config)
    if config.client_certificates == "optional":
        # EST and CMP authenticate by client certificate; the protocols check it against the store.
        ctx.verify_mode = ssl.CERT_OPTIONAL
        pem = "".join(c.public_bytes(Encoding.PEM).decode() for c in ca.roots)
        pem += "".join(c.public_bytes(Encoding.PEM).decode() for c in ca.intermediates())
        ctx.load_verify_locations(cadata=pem)
        for path in client_anchor_files(config):
            try:
                ctx.load_verify_locations(cafile=path)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"{path}: cannot load client trust anchors: {exc}") from None
    return ctx


def load_certificate(ctx: ssl.SSLContext, config: ServerConfig) -> None:
    """(Re)load the listener's certificate chain and key into `ctx`: on SIGHUP a renewed
    certificate serves the next handshakes without a restart (connections already open keep
    theirs). A pair that fails to load leaves the one in use."""
    assert config.tls_certificate and config.tls_key
    try:
        ctx.load_cert_chain(str(config.tls_certificate), str(config.tls_key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{config.tls_certificate}: cannot load TLS certificate/key: {exc}") from None
