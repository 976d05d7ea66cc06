"""Sans-IO translation between ACME JSON and typed values (RFC 8555 §7).

Decoders take the verified JWS payload bytes and raise `AcmeProblem` with a
precise reason; encoders turn state records into the resource objects clients
read. Nothing here awaits, logs or reads the clock (callers pass ``now``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from ca.enrollment import Identifier
from protocols.acme.b64 import Base64Error, b64d
from protocols.acme.errors import AcmeProblem, malformed
from protocols.acme.jws import loads_json
from protocols.acme.messages import (
    AccountUpdate,
    Finalize,
    KeyChangeInner,
    NewAccount,
    NewOrder,
    OrderIdentifier,
    RevokeCert,
)
from protocols.acme.records import Account, Authz, Challenge, Order

MAX_IDENTIFIERS = 100  # ACME-10
MAX_CONTACTS = 10


def _object(payload: bytes, what: str) -> dict[str, Any]:
    if payload == b"":
        raise malformed(f"{what} needs a JSON object payload, not an empty (POST-as-GET) one")
    value = loads_json(payload, f"{what} payload")
    if not isinstance(value, dict):
        raise malformed(f"{what} payload must be a JSON object")
    return value


def _bool(obj: dict[str, Any], key: str) -> bool:
    value = obj.get(key, False)
    if not isinstance(value, bool):
        raise malformed(f"{key} must be a boolean")
    return value


def rfc3339(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object, key: str) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise malformed(f"{key} must be an RFC 3339 date-time string")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise malformed(f"{key} is not an RFC 3339 date-time") from None
    if parsed.tzinfo is None:
        raise malformed(f"{key} must carry a time zone")
    return parsed.astimezone(dt.UTC)


def _contacts(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise malformed("contact must be an array of URL strings")
    if len(value) > MAX_CONTACTS:
        raise AcmeProblem("invalidContact", f"at most {MAX_CONTACTS} contacts are accepted")
    for contact in value:
        if not contact.startswith("mailto:"):
            raise AcmeProblem("unsupportedContact", f"only mailto: contacts are supported, not {contact[:40]!r}")
        address = contact[len("mailto:") :]
        local, at, domain = address.partition("@")
        if not at or not local or "." not in domain or "," in address or "?" in address or len(address) > 254:
            raise AcmeProblem("invalidContact", f"{contact[:80]!r} is not a single valid e-mail address")
    return tuple(value)


def decode_new_account(payload: bytes) -> NewAccount:
    obj = _object(payload, "newAccount")
    eab = obj.get("externalAccountBinding")
    if eab is not None and not isinstance(eab, dict):
        raise malformed("externalAccountBinding must be a JWS object")
    return NewAccount(
        contact=_contacts(obj["contact"]) if "contact" in obj else (),
        terms_agreed=_bool(obj, "termsOfServiceAgreed"),
        only_return_existing=_bool(obj, "onlyReturnExisting"),
        external_account_binding=eab,
    )


def decode_account_update(payload: bytes) -> AccountUpdate | None:
    """None for POST-as-GET (and for the legacy empty object): just read the account."""
    if payload == b"":
        return None
    obj = _object(payload, "account update")
    status = obj.get("status")
    if status is not None and status != "deactivated":
        raise malformed("an account's status can only be changed to 'deactivated'")
    contact = _contacts(obj["contact"]) if "contact" in obj else None
    if contact is None and status is None:
        return None
    return AccountUpdate(contact, status == "deactivated")


def decode_identifier(value: object) -> OrderIdentifier:
    if not isinstance(value, dict) or not isinstance(value.get("type"), str) or not isinstance(value.get("value"), str):
        raise malformed("each identifier must be an object with string 'type' and 'value'")
    kind, text = value["type"], value["value"]
    if kind == "dns":
        if not text or len(text) > 253 or text.count("*") > (1 if text.startswith("*.") else 0):
            raise AcmeProblem("rejectedIdentifier", f"{text[:80]!r} is not a valid DNS name")
        return OrderIdentifier(Identifier("dns", text))
    if kind == "ip":
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise AcmeProblem("rejectedIdentifier", f"{text[:80]!r} is not an IP address (RFC 8738)") from None
        return OrderIdentifier(Identifier("ip", str(address)))
    raise AcmeProblem("unsupportedIdentifier", f"identifier type {kind[:20]!r} is not supported (dns, ip)")


def decode_new_order(payload: bytes) -> NewOrder:
    obj = _object(payload, "newOrder")
    idents = obj.get("identifiers")
    if not isinstance(idents, list) or not idents:
        raise malformed("identifiers must be a non-empty array")
    if len(idents) > MAX_IDENTIFIERS:
        raise AcmeProblem("rejectedIdentifier", f"{len(idents)} identifiers; at most {MAX_IDENTIFIERS} per order")
    decoded = tuple(dict.fromkeys(decode_identifier(i) for i in idents))
    replaces = obj.get("replaces")
    if replaces is not None and not isinstance(replaces, str):
        raise malformed("replaces must be a string (RFC 9773 certificate identifier)")
    profile = obj.get("profile")
    if profile is not None and not isinstance(profile, str):
        raise malformed("profile must be a string")
    not_before = parse_time(obj.get("notBefore"), "notBefore")
    not_after = parse_time(obj.get("notAfter"), "notAfter")
    if not_before and not_after and not_after <= not_before:
        raise malformed("notAfter must be later than notBefore")
    return NewOrder(decoded, not_before, not_after, replaces, profile)


def decode_new_authz(payload: bytes) -> OrderIdentifier:
    obj = _object(payload, "newAuthz")
    ident = decode_identifier(obj.get("identifier"))
    if ident.wildcard:
        raise malformed("pre-authorization for a wildcard name is not supported (RFC 8555 §7.4.1)")
    return ident


def decode_finalize(payload: bytes) -> Finalize:
    obj = _object(payload, "finalize")
    try:
        return Finalize(b64d(obj.get("csr", "")))
    except Base64Error:
        raise AcmeProblem("badCSR", "csr must be a base64url DER CSR without padding") from None


def decode_revoke(payload: bytes) -> RevokeCert:
    obj = _object(payload, "revokeCert")
    try:
        der = b64d(obj.get("certificate", ""))
    except Base64Error:
        raise malformed("certificate must be base64url DER without padding") from None
    reason = obj.get("reason")
    if reason is not None and (not isinstance(reason, int) or isinstance(reason, bool)):
        raise AcmeProblem("badRevocationReason", "reason must be an integer reason code")
    return RevokeCert(der, reason)


def decode_key_change_inner(payload: bytes) -> KeyChangeInner:
    obj = _object(payload, "keyChange inner")
    account, old_key = obj.get("account"), obj.get("oldKey")
    if not isinstance(account, str) or not isinstance(old_key, dict):
        raise malformed("keyChange inner payload needs 'account' (URL) and 'oldKey' (JWK)")
    return KeyChangeInner(account, old_key)


def decode_authz_update(payload: bytes) -> bool:
    """True when the client deactivates the authorization (RFC 8555 §7.5.2); False for POST-as-GET."""
    if payload == b"":
        return False
    obj = _object(payload, "authorization update")
    if obj.get("status") != "deactivated":
        raise malformed("an authorization's status can only be changed to 'deactivated'")
    return True


def decode_challenge_response(payload: bytes) -> bool:
    """True when the client asks for validation ('{}'), False for POST-as-GET (§7.5.1)."""
    if payload == b"":
        return False
    _object(payload, "challenge response")
    return True


# -- encoders ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Urls:
    """Every URL a client sees, from the HTTPS base (context.https_url + "/acme")."""

    base: str

    def directory(self, profile: str | None) -> str:
        return f"{self.base}/{profile}/directory" if profile else f"{self.base}/directory"

    def per_directory(self, profile: str | None, name: str) -> str:
        return f"{self.base}/{profile}/{name}" if profile else f"{self.base}/{name}"

    @property
    def new_nonce(self) -> str:
        return f"{self.base}/new-nonce"

    @property
    def revoke_cert(self) -> str:
        return f"{self.base}/revoke-cert"

    @property
    def key_change(self) -> str:
        return f"{self.base}/key-change"

    @property
    def renewal_info(self) -> str:
        return f"{self.base}/renewal-info"

    def account(self, account_id: int) -> str:
        return f"{self.base}/acct/{account_id}"

    def orders(self, account_id: int) -> str:
        return f"{self.base}/acct/{account_id}/orders"

    def order(self, order_id: int) -> str:
        return f"{self.base}/order/{order_id}"

    def finalize(self, order_id: int) -> str:
        return f"{self.base}/order/{order_id}/finalize"

    def authz(self, authz_id: int) -> str:
        return f"{self.base}/authz/{authz_id}"

    def challenge(self, challenge_id: int) -> str:
        return f"{self.base}/chall/{challenge_id}"

    def certificate(self, cert_id: int, alternate: int = 0) -> str:
        return f"{self.base}/cert/{cert_id}" + (f"/{alternate}" if alternate else "")


def dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def encode_account(account: Account, urls: Urls) -> dict[str, Any]:
    out: dict[str, Any] = {
        "status": account.status,
        "contact": list(account.contact),
        "orders": urls.orders(account.id),
        "createdAt": rfc3339(account.created_at),
    }
    if account.tos_agreed:
        out["termsOfServiceAgreed"] = True
    if account.eab_key_id:
        out["externalAccountBinding"] = {"kid": account.eab_key_id}  # which key bound it, never the key
    return out


def encode_order(order: Order, status: str, urls: Urls) -> dict[str, Any]:
    out: dict[str, Any] = {
        "status": status,
        "expires": rfc3339(order.expires_at),
        "identifiers": [{"type": i.type, "value": i.value} for i in order.identifiers],
        "authorizations": [urls.authz(a) for a in order.authz_ids],
        "finalize": urls.finalize(order.id),
    }
    if order.profile:
        out["profile"] = order.profile
    if order.not_before:
        out["notBefore"] = rfc3339(order.not_before)
    if order.not_after:
        out["notAfter"] = rfc3339(order.not_after)
    if order.replaces:
        out["replaces"] = order.replaces
    if order.error and status == "invalid":
        out["error"] = order.error
    if status == "valid" and order.certificate_id is not None:
        out["certificate"] = urls.certificate(order.certificate_id)
    return out


def encode_challenge(challenge: Challenge, urls: Urls) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": challenge.type,
        "url": urls.challenge(challenge.id),
        "status": challenge.status,
        "token": challenge.token,
    }
    if challenge.validated_at is not None:
        out["validated"] = rfc3339(challenge.validated_at)
    if challenge.error:
        out["error"] = challenge.error
    return out


def encode_authz(authz: Authz, now: dt.datetime, urls: Urls) -> dict[str, Any]:
    status = authz.current_status(now)
    challenges = authz.challenges
    if status == "valid":
        # RFC 8555 §7.1.4: a valid authorization lists the challenge that validated it.
        challenges = tuple(c for c in challenges if c.status == "valid") or challenges
    out: dict[str, Any] = {
        "identifier": {"type": authz.identifier.type, "value": authz.identifier.value},
        "status": status,
        "expires": rfc3339(authz.expires_at),
        "challenges": [encode_challenge(c, urls) for c in challenges],
    }
    if authz.wildcard:
        out["wildcard"] = True
    return out
