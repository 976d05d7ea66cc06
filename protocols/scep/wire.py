"""SCEP over HTTP (RFC 8894 §4): ``operation=`` and ``message=`` in, content types out.

Be liberal in what the encoding may be: a GET ``message=`` is standard base64 (§4.1: not the
URL-safe alphabet), URL-encoded or not; Cisco IOS breaks it into lines (``%0A``, CRLF) and
some clients send ``+`` unescaped, which URL decoding turns into spaces (SCEP-13). A POST body is
the binary PKIMessage (§4.3). What cannot be a PKIMessage is refused here, before any
cryptography, with an HTTP 400 (SCEP-22).
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote

from protocols.base import WireRequest, WireResponse
from protocols.scep.errors import NotScep

CA_CERT = "application/x-x509-ca-cert"  # one DER CA certificate (§4.2.1.1)
CA_RA_CERT = "application/x-x509-ca-ra-cert"  # degenerate PKCS#7: RA and CA chain (§4.2.1.2)
NEXT_CA_CERT = "application/x-x509-next-ca-cert"  # §4.7
PKI_MESSAGE = "application/x-pki-message"  # CertRep (§4.3)

_BASE64 = re.compile(rb"[A-Za-z0-9+/]+={0,2}")
_LINE_BREAKS_AND_SPACES = str.maketrans({"\r": None, "\n": None, "\t": None, " ": "+"})


def operation(req: WireRequest) -> str:
    """The ``operation=`` parameter; 400 without one."""
    op = req.query.get("operation", "")
    if not op:
        raise NotScep(400, "missing operation= (GetCACaps, GetCACert, GetNextCACert, PKIOperation)")
    return op


def decode_message(text: str) -> bytes:
    """The DER of a GET ``message=`` as any client sends it; NotScep(400) if it is not base64."""
    if "%" in text:  # URL-encoded twice on the way (a proxy, a client that quotes its quoted form)
        text = unquote(text)
    compact = text.translate(_LINE_BREAKS_AND_SPACES).encode("ascii", "replace")
    if not compact or len(compact) % 4 or not _BASE64.fullmatch(compact):
        raise NotScep(400, "message= is not base64 (RFC 8894 §4.1)")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise NotScep(400, "message= is not base64 (RFC 8894 §4.1)") from None


def pki_message(req: WireRequest, max_body: int) -> bytes:
    """The PKIMessage of a PKIOperation: the POST body, or the GET ``message=``."""
    if req.method == "POST":
        body = req.body
        if len(body) > max_body:
            raise NotScep(413, f"the body is over the {max_body}-byte limit")
        if not body:
            raise NotScep(400, "PKIOperation POST has an empty body")
        if body[:1] != b"\x30":  # not DER: some clients POST the base64 form
            body = decode_message(body.decode("ascii", "replace"))
        return body
    text = req.query.get("message", "")
    if not text:
        raise NotScep(400, "PKIOperation by GET needs message=")
    if len(text) > max_body * 2:
        raise NotScep(413, "message= is over the size limit")
    der = decode_message(text)
    if len(der) > max_body:
        raise NotScep(413, f"the message is over the {max_body}-byte limit")
    return der


def refusal(error: NotScep) -> WireResponse:
    return WireResponse.text(error.status, f"{error.detail}\n")
