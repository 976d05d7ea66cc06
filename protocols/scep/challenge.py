"""Who may enrol under a SCEP profile: the challengePassword of the CSR (RFC 8894 §2.3, §3.3.1).

Three sources, per profile ([scep.profiles.<name>]): a webhook (when configured it alone judges,
the Intune model), a static password (compared in constant time), and one-time challenges made
by `tetra scep challenge` (spent by their first use, right or wrong; optionally bound to names:
then the CSR's CN and every subjectAltName must be among them, SCEP-15). A profile with
``open_enrollment`` needs none. Wrong challenges are braked per source address (SCEP-03): past the
limit the challenge is not even looked at, so a one-time challenge cannot be guessed by flood.
"""

from __future__ import annotations

import hmac
import logging

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AttributeOID, NameOID

from ca.csr import csr_identifiers
from ca.enrollment import AuthMethod, Requester
from ca.interface import CoreApi
from protocols.lockout import FailedAttempts
from protocols.scep.config import ScepProfileSettings
from protocols.scep.errors import bad_request
from protocols.scep.webhook import WebhookClient, WebhookQuery, WebhookRefused, WebhookSettings

log = logging.getLogger("tetra.scep")
PROTOCOL = "scep"
MAX_CHALLENGE = 255


def challenge_of(csr: x509.CertificateSigningRequest) -> str | None:
    """The challengePassword attribute as text, None if absent."""
    try:
        value = csr.attributes.get_attribute_for_oid(AttributeOID.CHALLENGE_PASSWORD).value
    except x509.AttributeNotFound:
        return None
    except ValueError:
        raise bad_request("the CSR's challengePassword cannot be read") from None
    try:
        text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
    except UnicodeDecodeError:
        raise bad_request("the CSR's challengePassword is not UTF-8 text") from None
    if len(text) > MAX_CHALLENGE:
        raise bad_request("the CSR's challengePassword is too long")
    return text


def requested_names(csr: x509.CertificateSigningRequest) -> tuple[str, ...]:
    """The CSR's common names and subjectAltName values, as a one-time challenge is bound to them."""
    cns = [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return (*cns, *(i.value for i in csr_identifiers(csr)))


def _bare(name: str) -> str:
    """A bound name as stored: "dns:host", "ip:..." or just "host"; compared without the type."""
    kind, sep, value = name.partition(":")
    return value.lower() if sep and kind in ("dns", "ip", "email", "uri", "cn") else name.lower()


class ChallengeChecker:
    def __init__(self, core: CoreApi, guard: FailedAttempts) -> None:
        self.core = core
        self.guard = guard
        self._webhooks: dict[WebhookSettings, WebhookClient] = {}

    async def close(self) -> None:
        for client in self._webhooks.values():
            await client.close()

    def _webhook(self, settings: WebhookSettings) -> WebhookClient:
        client = self._webhooks.get(settings)
        if client is None:
            client = self._webhooks[settings] = WebhookClient(settings)
        return client

    async def requester(
        self,
        profile: str,
        settings: ScepProfileSettings,
        csr: x509.CertificateSigningRequest,
        *,
        transaction_id: str,
        address: str,
    ) -> Requester:
        """The Requester this CSR's challenge proves, or ScepFailure(badRequest)."""
        challenge = challenge_of(csr)
        if settings.webhook is not None:
            return await self._ask_webhook(profile, settings.webhook, csr, challenge or "", transaction_id)
        if challenge is None:
            if settings.open_enrollment:
                return Requester(f"scep-open:{profile}", AuthMethod.NONE)
            raise bad_request("the CSR carries no challengePassword")
        wait = self.guard.wait(address)
        if wait:
            log.warning("scep: %s sent too many wrong challenges; refused for %d s", address, wait)
            raise bad_request(f"too many wrong challenges from this address; retry after {wait} s")
        if settings.challenge is not None and hmac.compare_digest(challenge.encode(), settings.challenge.encode()):
            self.guard.succeeded(address)
            return Requester(f"scep-static:{profile}", AuthMethod.CHALLENGE)
        if settings.one_time_challenges:
            credential = await self.core.credentials.consume_challenge(PROTOCOL, challenge)
            if credential is not None and credential.profile in (None, profile):
                self.guard.succeeded(address)
                self._check_bound(credential.identities, csr)
                return Requester(f"scep-challenge:{credential.id}", AuthMethod.CHALLENGE)
        self.guard.failed(address)
        raise bad_request("wrong, expired or already used challengePassword")

    @staticmethod
    def _check_bound(identities: tuple[str, ...], csr: x509.CertificateSigningRequest) -> None:
        """SCEP-15: a challenge made for names enrols those names only."""
        if not identities:
            return
        bound = {_bare(i) for i in identities}
        outside = [n for n in requested_names(csr) if n.lower() not in bound]
        if outside:
            raise bad_request(f"the challenge was made for other names than {', '.join(outside[:3])}")

    async def _ask_webhook(
        self, profile: str, settings: WebhookSettings, csr: x509.CertificateSigningRequest, challenge: str, tid: str
    ) -> Requester:
        query = WebhookQuery(
            profile=profile,
            transaction_id=tid,
            challenge=challenge,
            csr_der=csr.public_bytes(Encoding.DER),
            subject=csr.subject.rfc4514_string(),
            sans=tuple(str(i) for i in csr_identifiers(csr)),
        )
        try:
            await self._webhook(settings).allows(query)
        except WebhookRefused as exc:
            raise bad_request(f"the validation webhook refused: {exc}") from None
        return Requester(f"scep-webhook:{profile}", AuthMethod.CHALLENGE)
