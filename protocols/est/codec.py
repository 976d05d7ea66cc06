"""EST's encodings (RFC 7030 §4 with RFC 8951's clarifications).

Bodies both ways are base64 of DER. RFC 8951 §3.2: a receiver accepts base64 with or without
line breaks and ignores Content-Transfer-Encoding; the Content-Type of a request is checked
(415 when wrong). Replies carry 64-character lines, as `openssl base64 -d` (RFC 7030's own
examples) reads them.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Sequence

from cryptography import x509

from ca.cms.signed import certs_only
from protocols.base import WireRequest, WireResponse
from protocols.est.errors import bad_request, unsupported_media

PKCS10 = "application/pkcs10"
CERTS_ONLY = "application/pkcs7-mime; smime-type=certs-only"
PKCS8 = "application/pkcs8"
SERVER_GENERATED_KEY = "application/pkcs7-mime; smime-type=server-generated-key"  # RFC 7030 §4.4.2
CSRATTRS = "application/csrattrs"
MAX_BODY = 64 * 1024


def media_type(value: str) -> str:
    """The type/subtype of a Content-Type, lower case, without parameters."""
    return value.split(";", 1)[0].strip().lower()


def decode_base64(body: bytes, what: str) -> bytes:
    """Base64 with or without line breaks (RFC 8951 §3.2); anything else is a 400."""
    compact = b"".join(body.split())
    if not compact:
        raise bad_request(f"the {what} body is empty")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"the {what} body is not base64 (RFC 7030 §4.2.1)") from None


def request_der(req: WireRequest, expected: str = PKCS10) -> bytes:
    """The DER a POST carries, after its Content-Type was checked (Content-Transfer-Encoding ignored)."""
    given = media_type(req.headers.get("Content-Type", ""))
    if given != expected:
        shown = given or "none"
        raise unsupported_media(f"Content-Type must be {expected} (got {shown})")
    return decode_base64(req.body, expected)


def encode_base64(der: bytes) -> bytes:
    text = base64.b64encode(der)
    return b"".join(text[i : i + 64] + b"\r\n" for i in range(0, len(text), 64))


def base64_part_headers(content_type: str) -> dict[str, str]:
    return {"Content-Type": content_type, "Content-Transfer-Encoding": "base64"}


def certs_only_response(certificates: Sequence[x509.Certificate], status: int = 200) -> WireResponse:
    """application/pkcs7-mime certs-only, base64 (cacerts, simpleenroll, simplereenroll)."""
    return WireResponse(status, base64_part_headers(CERTS_ONLY), encode_base64(certs_only(certificates)))


def multipart_mixed(parts: Sequence[tuple[str, bytes]]) -> WireResponse:
    """multipart/mixed of base64 parts (serverkeygen, RFC 7030 §4.4.2): (Content-Type, DER) each."""
    boundary = "est-" + secrets.token_hex(12)
    body = b""
    for content_type, der in parts:
        head = f"--{boundary}\r\nContent-Type: {content_type}\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        body += head.encode() + encode_base64(der)
    body += f"--{boundary}--\r\n".encode()
    return WireResponse(200, {"Content-Type": f"multipart/mixed; boundary={boundary}"}, body)
