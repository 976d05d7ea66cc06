"""The inventory's exchange formats: rows read from CSV or JSON exports, and CSV written safely.

An organisation moving to Tetra brings a spreadsheet or a JSON dump from its previous CA or
tracker: one certificate per row plus who owns it. `read_export` accepts either, with the
column names other tools use for the certificate (PEM text or base64 DER), and fails on the
first bad row with its number, so that nothing is half imported.

CSV files are opened in spreadsheets, where a cell starting with = + - @ (or a tab or carriage
return) is run as a formula: an attacker who controls a certificate field (a subject, an owner)
could make the operator's spreadsheet fetch a URL or run a command. `write_csv` neutralises
every cell with a leading apostrophe (CLM-08, the OWASP "CSV injection" advice), and
`read_export` takes that apostrophe off again, so Tetra's own export round-trips unchanged.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509

from ca.inventory.containers import NotCertificates
from ca.inventory.facts import parse_der_certificate

MAX_EXPORT_BYTES = 100 * 1024 * 1024
PEM_COLUMNS = ("pem", "certificate", "cert", "certificate_pem")
DER_COLUMN = "der_base64"
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_GUARD = "'"


@dataclass(frozen=True)
class ImportRow:
    certificate: x509.Certificate
    owner: str | None
    team: str | None
    application: str | None
    tags: tuple[str, ...]
    renewal_method: str | None


def neutralise_cell(value: str) -> str:
    """``value`` made inert for spreadsheets: an apostrophe in front of a formula start (CLM-08)."""
    return _GUARD + value if value.startswith(_FORMULA_STARTS) else value


def restore_cell(value: str) -> str:
    """The inverse of `neutralise_cell`: only an apostrophe that it would have added is removed."""
    if value.startswith(_GUARD) and value[1:].startswith(_FORMULA_STARTS):
        return value[1:]
    return value


def write_csv(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """CSV text (header first, CRLF line ends) with every cell, the header's too, neutralised."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([neutralise_cell(cell) for cell in header])
    writer.writerows([neutralise_cell(cell) for cell in row] for row in rows)
    return out.getvalue()


def read_export(data: bytes, *, name: str) -> list[ImportRow]:
    """The rows of a CSV (with a header row) or JSON (a list of objects) export called ``name``.

    JSON is recognised by a ".json" name or a leading "[". Rows are numbered from 1, the header
    not counted. Raises NotCertificates naming the file and, for a bad row, its number.
    """
    if len(data) > MAX_EXPORT_BYTES:
        raise NotCertificates(f"{name}: larger than {MAX_EXPORT_BYTES // (1024 * 1024)} MiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NotCertificates(f"{name}: not UTF-8 text (byte {exc.start})") from None
    if name.lower().endswith(".json") or text.lstrip().startswith("["):
        records = _json_records(text, name)
    else:
        records = _csv_records(text, name)
    rows = []
    for number, record in enumerate(records, start=1):
        try:
            rows.append(_row(record))
        except ValueError as exc:
            raise NotCertificates(f"{name}: row {number}: {exc}") from None
    return rows


def _json_records(text: str, name: str) -> list[Mapping[str, object]]:
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise NotCertificates(f"{name}: not valid JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(document, list):
        raise NotCertificates(f"{name}: JSON export must be a list of objects")
    for number, record in enumerate(document, start=1):
        if not isinstance(record, dict):
            raise NotCertificates(f"{name}: row {number}: not a JSON object")
    return [{str(key).strip().lower(): value for key, value in record.items()} for record in document]


def _csv_records(text: str, name: str) -> list[Mapping[str, object]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [restore_cell(cell).strip().lower() for cell in next(reader, [])]
        if not header:
            raise NotCertificates(f"{name}: empty CSV, no header row")
        records: list[Mapping[str, object]] = []
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) > len(header):
                raise NotCertificates(f"{name}: row {len(records) + 1}: {len(cells)} cells for {len(header)} columns")
            records.append(dict(zip(header, (restore_cell(cell) for cell in cells), strict=False)))
    except csv.Error as exc:
        raise NotCertificates(f"{name}: line {reader.line_num}: not valid CSV ({exc})") from None
    return records


def _row(record: Mapping[str, object]) -> ImportRow:
    return ImportRow(
        certificate=_certificate(record),
        owner=_text(record, "owner"),
        team=_text(record, "team"),
        application=_text(record, "application"),
        tags=_tags(record.get("tags")),
        renewal_method=_text(record, "renewal_method"),
    )


def _certificate(record: Mapping[str, object]) -> x509.Certificate:
    for column in PEM_COLUMNS:
        pem = _text(record, column)
        if pem is not None:
            try:
                certificates = x509.load_pem_x509_certificates(pem.encode("utf-8"))
            except ValueError as exc:
                raise ValueError(f"{column} is not a PEM certificate ({str(exc).splitlines()[0]})") from None
            if len(certificates) != 1:
                raise ValueError(f"{column} holds {len(certificates)} certificates, not one")
            return certificates[0]
    der_text = _text(record, DER_COLUMN)
    if der_text is not None:
        try:
            return parse_der_certificate(base64.b64decode("".join(der_text.split()), validate=True))
        except (ValueError, binascii.Error) as exc:
            raise ValueError(f"{DER_COLUMN} is not a base64 DER certificate ({str(exc).splitlines()[0]})") from None
    raise ValueError(f"no certificate: none of {', '.join((*PEM_COLUMNS, DER_COLUMN))} is filled in")


def _text(record: Mapping[str, object], column: str) -> str | None:
    value = record.get(column)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{column} must be text, not {type(value).__name__}")
    value = value.strip()
    return value or None


def _tags(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        parts = value.replace(";", ",").split(",")
    elif isinstance(value, list) and all(isinstance(part, str) for part in value):
        parts = value
    else:
        raise ValueError("tags must be a list of text or text separated by ';' or ','")
    return tuple(dict.fromkeys(part.strip() for part in parts if part.strip()))
