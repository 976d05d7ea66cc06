"""/certificates: the inventory (search, show, label, download) and certificates' lives
(request, renew, reissue, revoke). The work is server/manage/actions/; this module is only
the HTTP shape: schemas, query parameters, replies."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from ca.enrollment import INVENTORY_FIELD_MAX
from ca.inventory.model import InventoryFilter, InventoryRecord, Source, Status
from ca.keys import KEY_SPECS
from ca.operators.roles import Permission
from server.cli.inventory_view import FIELDS, as_dict
from server.manage.actions import certificates, issuance
from server.manage.actions.certificates import MEDIA_TYPES, DownloadFormat, Labels
from server.manage.actions.issuance import Order, Requested
from server.manage.api.outcomes import HELD, ISSUED, outcome_reply
from server.manage.endpoint import Call, Endpoint, QueryParam, Reply, path_id
from server.manage.paging import PAGING, fetch_size, page, page_request, page_schema
from server.manage.schemas import CSR, INVENTORY_TEXT, NAME, REVOCATION_REASON

TAG = "certificates"
_TEXT = {"type": "string", "minLength": 1, "maxLength": INVENTORY_FIELD_MAX}
_DAYS = {"type": "integer", "minimum": 0, "maximum": 36500}

# The filters of `tetra inventory list` and `search`, named as its options are.
FILTERS = (
    QueryParam("search", _TEXT, "a name, and every name under it (`tetra inventory search`)"),
    QueryParam("expiring", _DAYS, "ending within DAYS days (ended ones too)"),
    QueryParam("status", {"type": "string", "enum": [s.value for s in Status]}),
    QueryParam("issuer", _TEXT, "a Tetra CA's name, or text in the issuer's name"),
    QueryParam("owner", _TEXT),
    QueryParam("team", _TEXT),
    QueryParam("tag", _TEXT),
    QueryParam("key-size-below", {"type": "integer", "minimum": 1, "maximum": 65536}, "RSA and DSA keys shorter"),
    QueryParam("signature-algorithm", _TEXT, "e.g. sha1WithRSAEncryption"),
    QueryParam("seen-at", _TEXT, "seen at an endpoint or path starting with this"),
    QueryParam("not-seen-since", _DAYS, "deployed, but not seen for DAYS days"),
    QueryParam("source", {"type": "string", "enum": [s.value for s in Source]}),
    QueryParam("profile", _TEXT, "Tetra's profile (certificates Tetra issued)"),
    QueryParam("protocol", _TEXT, "the protocol Tetra issued it through"),
)

_NULLABLE_TEXT = {"type": ["string", "null"]}
RECORD: dict[str, Any] = {
    "type": "object",
    "required": list(FIELDS),
    "properties": {
        name: (
            {"type": "integer"}
            if name == "id"
            else {"type": "array", "items": {"type": "string"}}
            if name in ("sans", "tags")
            else {"type": ["integer", "null"]}
            if name == "replaces"
            else _NULLABLE_TEXT
        )
        for name in FIELDS
    },
}

EDIT: dict[str, Any] = {
    "title": "CertificateLabels",
    "description": 'Owner, team, application and tags; a member left out is left as it is, "" clears it.',
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "owner": INVENTORY_TEXT,
        "team": INVENTORY_TEXT,
        "application": INVENTORY_TEXT,
        "tags": {"type": "array", "maxItems": 32, "items": {"type": "string", "minLength": 1, "maxLength": 64}},
    },
}

NEW_CERTIFICATE: dict[str, Any] = {
    "title": "CertificateRequest",
    "description": "Under a profile: a CSR, or a key the CA makes (returned once, as PKCS#12, never stored).",
    "type": "object",
    "required": ["profile"],
    "additionalProperties": False,
    "properties": {
        "profile": NAME,
        "csr": CSR,
        "key": {"type": "string", "enum": list(KEY_SPECS), "description": "the key type the CA makes"},
        "subject": {"type": "string", "maxLength": 1024, "description": "RFC 4514: CN=www.example.com,O=Example"},
        "names": {
            "type": "array",
            "maxItems": 100,
            "items": {"type": "string", "minLength": 1, "maxLength": 253},
            "description": "DNS names, IP addresses, or typed (email:ops@example.com)",
        },
        "passphrase": {"type": "string", "minLength": 8, "maxLength": 256, "description": "encrypts the PKCS#12"},
        "team": _TEXT,
        "owner": INVENTORY_TEXT,
        "application": INVENTORY_TEXT,
        "location": INVENTORY_TEXT,
    },
    "oneOf": [
        {"required": ["csr"], "not": {"anyOf": [{"required": ["key"]}, {"required": ["passphrase"]}]}},
        {"required": ["key", "names", "passphrase"], "not": {"required": ["csr"]}},
    ],
}

WITH_KEY: dict[str, Any] = {
    "type": "object",
    "required": [*ISSUED["required"], "pkcs12"],
    "properties": {**ISSUED["properties"], "pkcs12": {"type": "string", "description": "base64 PKCS#12"}},
}
REVOKE: dict[str, Any] = {
    "title": "Revocation",
    "type": "object",
    "required": ["reason"],
    "additionalProperties": False,
    "properties": {"reason": REVOCATION_REASON},
}


def _filter(query: Any, now: dt.datetime) -> InventoryFilter:
    request = page_request(query)
    days = {name: query.get(name) for name in ("expiring", "not-seen-since")}
    return InventoryFilter(
        name=query.get("search"),
        expiring_before=now + dt.timedelta(days=days["expiring"]) if days["expiring"] is not None else None,
        status=Status(query["status"]) if "status" in query else None,
        issuer=query.get("issuer"),
        owner=query.get("owner"),
        team=query.get("team"),
        tag=query.get("tag"),
        key_size_below=query.get("key-size-below"),
        signature_algorithm=query.get("signature-algorithm"),
        seen_at=query.get("seen-at"),
        not_seen_since=now - dt.timedelta(days=days["not-seen-since"]) if days["not-seen-since"] is not None else None,
        source=Source(query["source"]) if "source" in query else None,
        profile=query.get("profile"),
        protocol=query.get("protocol"),
        now=now,
        after_id=request.after_id,
        limit=fetch_size(request),
    )


async def search(call: Call) -> Reply:
    now = call.ca.clock.now()
    records = await certificates.search(call.ca, call.acting, _filter(call.query, now))
    return Reply(body=page(records, page_request(call.query), _id, lambda r: as_dict(r, now)))


async def show(call: Call) -> Reply:
    record = await certificates.show(call.ca, call.acting, path_id(call))
    return Reply(body=as_dict(record, call.ca.clock.now()))


async def edit(call: Call) -> Reply:
    body = call.body
    tags = body.get("tags")
    labels = Labels(body.get("owner"), body.get("team"), body.get("application"), None if tags is None else tuple(tags))
    record = await certificates.edit(call.ca, call.acting, path_id(call), labels)
    return Reply(body=as_dict(record, call.ca.clock.now()))


async def download(call: Call) -> Reply:
    fmt = DownloadFormat(call.query.get("format", DownloadFormat.PEM.value))
    found = await certificates.download(call.ca, call.acting, path_id(call), fmt)
    disposition = {"Content-Disposition": f'attachment; filename="{found.filename}"'}
    return Reply(data=found.data, media_type=found.media_type, headers=disposition)


async def request(call: Call) -> Reply:
    body = call.body
    order = Order(
        profile=body["profile"],
        csr=body["csr"].encode() if "csr" in body else None,
        key_type=body.get("key"),
        subject=body.get("subject"),
        names=tuple(body.get("names", ())),
        team=body.get("team"),
        owner=body.get("owner"),
        application=body.get("application"),
        location=body.get("location"),
    )
    requested = await issuance.request_certificate(call.ca, call.acting, order)
    return _requested(requested, body.get("passphrase"))


async def renew(call: Call) -> Reply:
    return _requested(await issuance.renew(call.ca, call.acting, path_id(call)), None)


async def reissue(call: Call) -> Reply:
    return _requested(await issuance.reissue(call.ca, call.acting, path_id(call)), None)


async def revoke(call: Call) -> Reply:
    revoked = await certificates.revoke(call.ca, call.acting, path_id(call), call.body["reason"])
    return Reply(body={"serial": revoked.serial_hex, "status": revoked.status, "reason": revoked.revocation_reason})


def _requested(requested: Requested, passphrase: str | None) -> Reply:
    reply = outcome_reply(requested.outcome, issued_status=201)
    if requested.private_key is None or passphrase is None:
        return reply
    bundle = issuance.pkcs12_bundle(requested, passphrase)
    return Reply(reply.status, {**reply.body, "pkcs12": base64.b64encode(bundle).decode()}, headers=reply.headers)


def _id(record: InventoryRecord) -> int:
    return record.id


_ITEM = "/certificates/{id}"
_ISSUED_OR_HELD = {201: ISSUED, 202: HELD}

ENDPOINTS = (
    Endpoint(
        "GET",
        "/certificates",
        "listCertificates",
        "Search the inventory (the filters of `tetra inventory list`)",
        Permission.CERTIFICATES_READ,
        search,
        {200: page_schema(RECORD)},
        query=(*FILTERS, *PAGING),
        tag=TAG,
    ),
    Endpoint(
        "POST",
        "/certificates",
        "requestCertificate",
        "Request a certificate: a CSR, or a key the CA makes (PKCS#12 once)",
        Permission.CERTIFICATES_REQUEST,
        request,
        {201: WITH_KEY, 202: HELD},
        body=NEW_CERTIFICATE,
        tag=TAG,
    ),
    Endpoint(
        "GET",
        _ITEM,
        "getCertificate",
        "One inventory record",
        Permission.CERTIFICATES_READ,
        show,
        {200: RECORD},
        tag=TAG,
    ),
    Endpoint(
        "PATCH",
        _ITEM,
        "labelCertificate",
        "Set owner, team, application, tags",
        Permission.CERTIFICATES_EDIT,
        edit,
        {200: RECORD},
        body=EDIT,
        tag=TAG,
    ),
    Endpoint(
        "GET",
        _ITEM + "/download",
        "downloadCertificate",
        "The certificate as PEM (with its chain), DER, or PKCS#7 (with its chain)",
        Permission.CERTIFICATES_READ,
        download,
        {200: {"type": "string", "format": "binary"}},
        query=(QueryParam("format", {"type": "string", "enum": [f.value for f in DownloadFormat], "default": "pem"}),),
        media_types={200: tuple(MEDIA_TYPES.values())},  # as the format asks
        tag=TAG,
    ),
    Endpoint(
        "POST",
        _ITEM + "/renew",
        "renewCertificate",
        "The same names, key and profile again; the new one replaces the old",
        Permission.CERTIFICATES_RENEW,
        renew,
        _ISSUED_OR_HELD,
        tag=TAG,
    ),
    Endpoint(
        "POST",
        _ITEM + "/reissue",
        "reissueCertificate",
        "Renew, then revoke the old certificate as superseded",
        Permission.CERTIFICATES_RENEW,
        reissue,
        {201: ISSUED},
        tag=TAG,
    ),
    Endpoint(
        "POST",
        _ITEM + "/revoke",
        "revokeCertificate",
        "Revoke with an RFC 5280 reason",
        Permission.CERTIFICATES_REVOKE,
        revoke,
        {200: {"type": "object", "required": ["serial", "status", "reason"]}},
        body=REVOKE,
        tag=TAG,
    ),
)
