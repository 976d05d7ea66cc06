"""SCEP-13 and SCEP-22 at the decoding layer: every way clients encode message=, and what is refused."""

from __future__ import annotations

import base64
import os
from urllib.parse import quote

import pytest

from protocols.base import WireRequest
from protocols.scep.errors import NotScep
from protocols.scep.wire import decode_message, operation, pki_message

DER = b"\x30\x82\x01\x00" + os.urandom(256) + b"\xfb\xff"  # '+' and '/' in its base64 for sure


def _get(message: str) -> WireRequest:
    return WireRequest("GET", "/", {"operation": "PKIOperation", "message": message}, {}, b"")


@pytest.mark.parametrize(
    "encode",
    [
        lambda b: b,  # as aiohttp hands it over, already URL-decoded
        lambda b: b.replace("+", " "),  # an unescaped '+' URL-decoded into a space
        lambda b: "\n".join(b[i : i + 64] for i in range(0, len(b), 64)) + "\n",  # Cisco IOS lines
        lambda b: "\r\n".join(b[i : i + 76] for i in range(0, len(b), 76)),  # CRLF lines
        lambda b: quote(b, safe=""),  # URL-encoded twice on the way
    ],
)
def test_every_client_encoding_decodes(encode: object) -> None:
    text = base64.b64encode(DER).decode()
    assert "+" in text or "/" in text
    assert pki_message(_get(encode(text)), 65536) == DER  # type: ignore[operator]


@pytest.mark.parametrize("text", ["", "%%%", "abc", "YWJj!", base64.urlsafe_b64encode(b"\xfb\xff\xfe").decode()])
def test_not_base64_is_400(text: str) -> None:
    with pytest.raises(NotScep) as err:
        pki_message(_get(text), 65536)
    assert err.value.status == 400


def test_post_binary_and_base64_bodies() -> None:
    post = WireRequest("POST", "/", {"operation": "PKIOperation"}, {}, DER)
    assert pki_message(post, 65536) == DER
    b64 = WireRequest("POST", "/", {"operation": "PKIOperation"}, {}, base64.b64encode(DER))
    assert pki_message(b64, 65536) == DER


def test_over_the_limit_is_413() -> None:
    big = b"\x30" * 2000
    with pytest.raises(NotScep) as err:
        pki_message(WireRequest("POST", "/", {}, {}, big), 1024)
    assert err.value.status == 413
    with pytest.raises(NotScep) as err:
        pki_message(_get(base64.b64encode(big).decode()), 1024)
    assert err.value.status == 413


def test_operation_is_required() -> None:
    with pytest.raises(NotScep):
        operation(WireRequest("GET", "/", {}, {}, b""))
    assert decode_message(base64.b64encode(b"\x30\x00").decode()) == b"\x30\x00"
