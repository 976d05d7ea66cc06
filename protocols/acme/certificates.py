"""Certificate download (RFC 8555 §7.4.2), revokeCert (§7.6) and renewalInfo (RFC 9773)."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ca.errors import CAError
from ca.records import CertificateRecord
from ca.state_store import certificate_record
from protocols.acme import ari
from protocols.acme.auth import NOT_LOADED, Signed
from protocols.acme.codec import decode_revoke, rfc3339
from protocols.acme.context import AcmeContext, Reply
from protocols.acme.errors import AcmeProblem, malformed, not_found, problem_from_ca_error, unauthorized
from protocols.acme.orders import requester_name

PEM_CHAIN = "application/pem-certificate-chain"
# RFC 5280 §5.3.1 codes a subscriber may give (CA/B Forum BR 7.2.2); 6, 7, 8 and CA-only reasons are refused.
SUBSCRIBER_REASONS = {0, 1, 3, 4, 5, 9}


async def download(ctx: AcmeContext, signed: Signed, cert_id: int, alternate: int = 0) -> Reply:
    if signed.payload:
        raise malformed("a certificate is downloaded with POST-as-GET (empty payload)")
    account = signed.require_account()
    if signed.loaded is NOT_LOADED:
        order = await ctx.orders.for_certificate(cert_id)
        row = None
    else:
        order, row = signed.loaded
    if order is None:
        raise not_found("no such certificate")
    if order.account_id != account.id:
        raise unauthorized("this certificate belongs to another account")
    record = certificate_record(row) if row is not None else await ctx.core.certificate(cert_id)
    if record is None or record.der is None:
        raise not_found("no such certificate")
    chains = ctx.chains(record.issuer)
    if not 0 <= alternate < len(chains):
        raise not_found("no such alternate chain")
    leaf = x509.load_der_x509_certificate(record.der)
    body = leaf.public_bytes(Encoding.PEM) + b"".join(c.public_bytes(Encoding.PEM) for c in chains[alternate])
    links = tuple(f'<{ctx.urls.certificate(cert_id, i)}>;rel="alternate"' for i in range(len(chains)) if i != alternate)
    return Reply(200, body, links=links, content_type=PEM_CHAIN)


async def find_record(ctx: AcmeContext, cert: x509.Certificate) -> CertificateRecord:
    der = cert.public_bytes(Encoding.DER)
    for name in ctx.core.issuer_names:
        if cert.issuer != ctx.core.chain(name)[0].subject:
            continue
        record = await ctx.core.certificate_by_serial(name, cert.serial_number)
        if record is not None and record.der == der:
            return record
    raise not_found("this certificate was not issued by this CA")


async def revoke_cert(ctx: AcmeContext, signed: Signed) -> Reply:
    request = decode_revoke(signed.payload)
    try:
        cert = x509.load_der_x509_certificate(request.certificate_der)
    except ValueError:
        raise malformed("certificate is not a DER X.509 certificate") from None
    reason = 0 if request.reason is None else request.reason
    if reason not in SUBSCRIBER_REASONS:
        raise AcmeProblem(
            "badRevocationReason",
            f"revocation reason {reason} is not accepted "
            f"(allowed: {', '.join(str(r) for r in sorted(SUBSCRIBER_REASONS))})",
        )
    record = await find_record(ctx, cert)
    if signed.account is None:
        # RFC 8555 §7.6: signed by the certificate's own key.
        if signed.jwk.spki() != cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo):
            raise unauthorized("the JWS key is not the certificate's key")
        actor = "acme:certificate-key"
    else:
        account = signed.account
        actor = requester_name(account.id)
        order = await ctx.orders.for_certificate(record.id)
        if order is None or order.account_id != account.id:
            names = set(record.sans)
            held = {
                str(i)
                for i in await ctx.authzs.valid_identifiers(
                    account.id, {s.split(":", 1)[1].removeprefix("*.") for s in names}, ctx.clock.now()
                )
            }
            if not names or not names <= held:
                raise unauthorized(
                    "this account neither owns the certificate nor holds authorizations for all its names"
                )
    try:
        await ctx.core.revoke(record.issuer, record.serial, reason, requester=actor)
    except CAError as exc:
        raise problem_from_ca_error(exc) from None
    return Reply(200)


async def renewal_info(ctx: AcmeContext, cert_id_text: str) -> Reply:
    cert_id = ari.parse_cert_id(cert_id_text)
    record = await ari.find_certificate(ctx.core, cert_id)
    if record is None or record.status not in ("issued", "revoked"):
        raise not_found("no certificate with this identifier")
    now = ctx.clock.now()
    issued_at = record.issued_at or record.created_at
    if record.status == "revoked" or await ctx.renewals.requested_since(
        record.serial_hex, record.profile, record.issuer, issued_at
    ):
        window = ari.immediate_window(now)
    else:
        days = ctx.core.profiles[record.profile].renewal_window_days if record.profile in ctx.core.profiles else 30
        window = ari.normal_window(record.not_before, record.not_after, days)
    body = {"suggestedWindow": {"start": rfc3339(window.start), "end": rfc3339(window.end)}}
    return Reply(200, body, retry_after=ctx.config.renewal_info_retry_after)
