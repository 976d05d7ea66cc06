"""Discovery: GET /discovery/scans, GET /discovery/scans/{id} (with its summary),
GET /discovery/scans/{id}/findings, GET /discovery/findings (weak endpoints and files now),
POST /discovery/scans (checked against [discovery] allow and max_endpoints, then run in the
background: 202 with the scan's id). Teams: server/manage/actions/discovery.py."""

from __future__ import annotations

from typing import Any

from ca.inventory.scans import CurrentFinding, ScanFinding, ScanRecord
from ca.operators.roles import Permission
from server.manage.actions import discovery
from server.manage.endpoint import Call, Endpoint, QueryParam, Reply, path_id
from server.manage.paging import PAGING, encode, fetch_size, page, page_request, page_schema

_TIME = {"type": ["string", "null"]}
SCAN: dict[str, Any] = {
    "title": "Scan",
    "type": "object",
    "required": ["id", "kind", "targets", "requested_by", "status", "started_at", "finished_at", "summary", "team"],
    "properties": {
        "id": {"type": "integer"},
        "kind": {"type": "string", "enum": ["network", "files"]},
        "targets": {"type": "array", "items": {"type": "string"}},
        "requested_by": {"type": "string"},
        "status": {"type": "string", "enum": ["running", "done", "failed"]},
        "started_at": _TIME,
        "finished_at": _TIME,
        "summary": {"type": "object", "description": "counts, written when it ends"},
        "team": {"type": ["string", "null"]},
    },
}
FINDING: dict[str, Any] = {
    "title": "Finding",
    "type": "object",
    "required": ["location", "code", "severity", "detail", "inventory_id", "at"],
    "properties": {
        "id": {"type": "integer"},
        "location": {"type": "string", "description": "host:port or a file path"},
        "kind": {"type": "string", "enum": ["endpoint", "file"]},
        "code": {"type": "string"},
        "severity": {"type": "string", "enum": list(discovery.SEVERITIES)},
        "detail": {"type": "string"},
        "inventory_id": {"type": ["integer", "null"], "description": "the certificate it concerns"},
        "at": {"type": "string"},
    },
}
START: dict[str, Any] = {
    "title": "NewScan",
    "description": "A network scan (targets: addresses, CIDR ranges, names, with :port) or a file scan (paths).",
    "oneOf": [
        {
            "type": "object",
            "required": ["kind", "targets"],
            "additionalProperties": False,
            "properties": {
                "kind": {"const": "network"},
                "targets": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": discovery.MAX_TARGETS,
                    "items": {"type": "string", "minLength": 1, "maxLength": 255},
                },
                "ports": {
                    "type": "array",
                    "maxItems": 64,
                    "items": {"type": "integer", "minimum": 1, "maximum": 65535},
                },
                "team": {"type": "string", "minLength": 1, "maxLength": 255},
            },
        },
        {
            "type": "object",
            "required": ["kind", "paths"],
            "additionalProperties": False,
            "properties": {
                "kind": {"const": "files"},
                "paths": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": discovery.MAX_PATHS,
                    "items": {"type": "string", "minLength": 1, "maxLength": 4096},
                },
            },
        },
    ],
}
STARTED: dict[str, Any] = {"type": "object", "required": ["scan"], "properties": {"scan": {"type": "integer"}}}
SEVERITY = QueryParam("severity", {"type": "string", "enum": list(discovery.SEVERITIES)}, "only this severity")
LOCATION = QueryParam("location", {"type": "string", "minLength": 1, "maxLength": 255}, "locations beginning with this")


async def list_scans(call: Call) -> Reply:
    request = page_request(call.query)
    found = await discovery.scans(call.ca, call.acting, after_id=request.after_id, limit=fetch_size(request))
    return Reply(body=page(found, request, lambda s: s.id, scan_dict))


async def show_scan(call: Call) -> Reply:
    return Reply(body=scan_dict(await discovery.show(call.ca, call.acting, path_id(call))))


async def scan_findings(call: Call) -> Reply:
    request = page_request(call.query)
    found = await discovery.findings(
        call.ca,
        call.acting,
        path_id(call),
        severity=call.query.get("severity"),
        after_id=request.after_id,
        limit=fetch_size(request),
    )
    return Reply(body=page(found, request, lambda f: f.id, finding_dict))


async def current_findings(call: Call) -> Reply:
    """Paged by position (the current findings are ordered by location, not by id): the cursor
    counts the findings already shown."""
    request = page_request(call.query)
    skip = request.after_id or 0
    found = await discovery.current_findings(
        call.ca,
        call.acting,
        severity=call.query.get("severity"),
        location=call.query.get("location"),
        limit=skip + fetch_size(request),
    )
    shown = found[skip : skip + request.limit]
    more = len(found) > skip + request.limit
    return Reply(body={"items": [current_dict(f) for f in shown], "next": encode(skip + len(shown)) if more else None})


async def start_scan(call: Call) -> Reply:
    body = call.body
    settings = call.server.discovery
    if body["kind"] == "network":
        scan_id = await discovery.start_network_scan(
            call.ca,
            settings,
            call.acting,
            targets=list(body["targets"]),
            ports=list(body.get("ports", [])),
            team=body.get("team"),
        )
    else:
        scan_id = await discovery.start_file_scan(call.ca, settings, call.acting, paths=list(body["paths"]))
    return Reply(202, {"scan": scan_id}, headers={"Location": f"/api/v1/discovery/scans/{scan_id}"})


def scan_dict(scan: ScanRecord) -> dict[str, Any]:
    return {
        "id": scan.id,
        "kind": scan.kind,
        "targets": list(scan.targets),
        "requested_by": scan.requested_by,
        "status": scan.status,
        "started_at": scan.started_at.isoformat(),
        "finished_at": scan.finished_at.isoformat() if scan.finished_at else None,
        "summary": scan.summary,
        "team": scan.team,
    }


def finding_dict(finding: ScanFinding) -> dict[str, Any]:
    return {
        "id": finding.id,
        "location": finding.location,
        "code": finding.code,
        "severity": finding.severity,
        "detail": finding.detail,
        "inventory_id": finding.inventory_id,
        "at": finding.at.isoformat(),
    }


def current_dict(finding: CurrentFinding) -> dict[str, Any]:
    return {
        "location": finding.location,
        "kind": finding.kind,
        "code": finding.code,
        "severity": finding.severity,
        "detail": finding.detail,
        "inventory_id": finding.inventory_id,
        "at": finding.at.isoformat(),
    }


ENDPOINTS = (
    Endpoint(
        "GET",
        "/discovery/scans",
        "listScans",
        "Discovery scans, oldest first",
        Permission.DISCOVERY_READ,
        list_scans,
        {200: page_schema(SCAN)},
        query=PAGING,
        tag="discovery",
    ),
    Endpoint(
        "POST",
        "/discovery/scans",
        "startScan",
        "Start a network or file scan in the background (202: follow it at Location)",
        Permission.DISCOVERY_SCAN,
        start_scan,
        {202: STARTED},
        body=START,
        tag="discovery",
    ),
    Endpoint(
        "GET",
        "/discovery/scans/{id}",
        "getScan",
        "One scan: its status and summary",
        Permission.DISCOVERY_READ,
        show_scan,
        {200: SCAN},
        tag="discovery",
    ),
    Endpoint(
        "GET",
        "/discovery/scans/{id}/findings",
        "listScanFindings",
        "What one scan found",
        Permission.DISCOVERY_READ,
        scan_findings,
        {200: page_schema(FINDING)},
        query=(SEVERITY, *PAGING),
        tag="discovery",
    ),
    Endpoint(
        "GET",
        "/discovery/findings",
        "listCurrentFindings",
        "Weak endpoints and files now: each location's findings from its latest scan",
        Permission.DISCOVERY_READ,
        current_findings,
        {200: page_schema(FINDING)},
        query=(SEVERITY, LOCATION, *PAGING),
        tag="discovery",
    ),
)
