"""RFC 7512 ``pkcs11:`` URIs: which token, which key, which module.

Operators name HSM keys the same way p11tool, OpenSSL providers and p11-kit
do, so a URI copied from ``p11tool --list-privkeys`` works in Tetra's config.
A PIN is never accepted inline (``pin-value``): a URI ends up in config files,
logs and error messages, and a PIN must not.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from ca.digits import parse_decimal

SCHEME = "pkcs11:"

_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_RES_AVAIL = frozenset(":[]@!$'()*+,=")
# In the path "&" is plain data; in the query "/", "?" and "|" are (module
# paths and pin-source commands need them). Anything else must be %-encoded.
_PATH_CHARS = _UNRESERVED | _RES_AVAIL | {"&"}
_QUERY_CHARS = _UNRESERVED | _RES_AVAIL | {"/", "?", "|"}
_HEX = frozenset(string.hexdigits)
_VENDOR_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "-_")

_PATH_TEXT = {
    "token": "token",
    "manufacturer": "manufacturer",
    "serial": "serial",
    "model": "model",
    "library-manufacturer": "library_manufacturer",
    "library-description": "library_description",
    "library-version": "library_version",
    "object": "object",
    "type": "type",
    "slot-description": "slot_description",
    "slot-manufacturer": "slot_manufacturer",
}
_QUERY_TEXT = {
    "pin-source": "pin_source",
    "module-name": "module_name",
    "module-path": "module_path",
}
_TYPES = ("public", "private", "cert", "secret-key", "data")


@dataclass(frozen=True)
class Pkcs11Uri:
    """A parsed ``pkcs11:`` URI; ``None`` means the attribute was absent (matches anything)."""

    token: str | None = None
    manufacturer: str | None = None
    serial: str | None = None
    model: str | None = None
    library_manufacturer: str | None = None
    library_description: str | None = None
    library_version: str | None = None
    object: str | None = None
    type: str | None = None
    id: bytes | None = None
    slot_description: str | None = None
    slot_manufacturer: str | None = None
    slot_id: int | None = None
    pin_source: str | None = None
    module_name: str | None = None
    module_path: str | None = None
    vendor_path: tuple[tuple[str, str], ...] = ()  # "x-..." attributes, kept for the vendor
    vendor_query: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str | None:
        """The object label (CKA_LABEL): RFC 7512 calls it ``object``."""
        return self.object

    def __str__(self) -> str:
        return format_pkcs11_uri(self)


def _percent_decode(raw: str, allowed: frozenset[str], name: str) -> bytes:
    """Decode %XX escapes, refusing characters the URI grammar does not allow raw."""
    out = bytearray()
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "%":
            pair = raw[i + 1 : i + 3]
            if len(pair) != 2 or not all(c in _HEX for c in pair):
                raise ValueError(f"pkcs11 URI: attribute {name!r} has a bad percent escape {raw[i : i + 3]!r}")
            out.append(int(pair, 16))
            i += 3
            continue
        if ch not in allowed:
            raise ValueError(
                f"pkcs11 URI: attribute {name!r} contains {ch!r}, which must be "
                f"percent-encoded (as %{ord(ch):02X} if ASCII)"
            )
        out += ch.encode()
        i += 1
    return bytes(out)


def _text(value: bytes, name: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"pkcs11 URI: attribute {name!r} is not valid UTF-8") from None


def _split_attrs(part: str, sep: str, where: str) -> list[tuple[str, str]]:
    """name=value pairs, still percent-encoded (names are checked before values)."""
    attrs: list[tuple[str, str]] = []
    seen: set[str] = set()
    if not part:
        return attrs
    for item in part.split(sep):
        name, eq, raw = item.partition("=")
        if not eq or not name:
            raise ValueError(f"pkcs11 URI: {where} attribute {item!r} is not name=value")
        if name in seen:
            raise ValueError(f"pkcs11 URI: {where} attribute {name!r} appears twice")
        seen.add(name)
        attrs.append((name, raw))
    return attrs


def _vendor_name(name: str) -> bool:
    return name.startswith("x-") and len(name) > 2 and all(c in _VENDOR_NAME_CHARS for c in name[2:])


def parse_pkcs11_uri(uri: str) -> Pkcs11Uri:
    """Parse and check an RFC 7512 URI; a ValueError says what is wrong with it."""
    if uri[: len(SCHEME)].lower() != SCHEME:
        raise ValueError(f"pkcs11 URI: must start with {SCHEME!r}")
    rest = uri[len(SCHEME) :]
    if "#" in rest:
        raise ValueError("pkcs11 URI: a fragment ('#') is not allowed; percent-encode it as %23")
    path, _, query = rest.partition("?")

    fields: dict[str, object] = {}
    vendor_path: list[tuple[str, str]] = []
    vendor_query: list[tuple[str, str]] = []

    for name, raw in _split_attrs(path, ";", "path"):
        if name in _QUERY_TEXT or name == "pin-value":
            raise ValueError(f"pkcs11 URI: {name!r} belongs in the query part (after '?')")
        is_vendor = _vendor_name(name)
        if name not in _PATH_TEXT and name not in ("id", "slot-id") and not is_vendor:
            raise ValueError(f"pkcs11 URI: unknown path attribute {name!r}")
        value = _percent_decode(raw, _PATH_CHARS, name)
        if name == "id":
            fields["id"] = value
        elif name == "slot-id":
            slot_id = parse_decimal(value.decode("latin-1"), 20)
            if slot_id is None:
                raise ValueError(f"pkcs11 URI: slot-id must be a decimal number, got {value!r}")
            fields["slot_id"] = slot_id
        elif is_vendor:
            vendor_path.append((name, _text(value, name)))
        else:
            fields[_PATH_TEXT[name]] = _text(value, name)

    for name, raw in _split_attrs(query, "&", "query"):
        if name == "pin-value":
            raise ValueError(
                "pkcs11 URI: pin-value is refused: a PIN must never sit inside a URI; "
                "use pin-source or the signer's PIN setting"
            )
        if name in _PATH_TEXT or name in ("id", "slot-id"):
            raise ValueError(f"pkcs11 URI: {name!r} belongs in the path part (before '?')")
        is_vendor = _vendor_name(name)
        if name not in _QUERY_TEXT and not is_vendor:
            raise ValueError(f"pkcs11 URI: unknown query attribute {name!r}")
        text = _text(_percent_decode(raw, _QUERY_CHARS, name), name)
        if is_vendor:
            vendor_query.append((name, text))
        else:
            fields[_QUERY_TEXT[name]] = text

    obj_type = fields.get("type")
    if obj_type is not None and obj_type not in _TYPES:
        raise ValueError(f"pkcs11 URI: type must be one of {', '.join(_TYPES)}, got {obj_type!r}")
    version = fields.get("library_version")
    if isinstance(version, str):
        major, dot, minor = version.partition(".")
        if parse_decimal(major, 3) is None or (dot and parse_decimal(minor, 3) is None):
            raise ValueError(f"pkcs11 URI: library-version must look like 2 or 2.40, got {version!r}")
    if "module_name" in fields and "module_path" in fields:
        raise ValueError("pkcs11 URI: give module-name or module-path, not both")

    return Pkcs11Uri(
        token=_opt_str(fields, "token"),
        manufacturer=_opt_str(fields, "manufacturer"),
        serial=_opt_str(fields, "serial"),
        model=_opt_str(fields, "model"),
        library_manufacturer=_opt_str(fields, "library_manufacturer"),
        library_description=_opt_str(fields, "library_description"),
        library_version=_opt_str(fields, "library_version"),
        object=_opt_str(fields, "object"),
        type=_opt_str(fields, "type"),
        id=_opt_bytes(fields, "id"),
        slot_description=_opt_str(fields, "slot_description"),
        slot_manufacturer=_opt_str(fields, "slot_manufacturer"),
        slot_id=_opt_int(fields, "slot_id"),
        pin_source=_opt_str(fields, "pin_source"),
        module_name=_opt_str(fields, "module_name"),
        module_path=_opt_str(fields, "module_path"),
        vendor_path=tuple(vendor_path),
        vendor_query=tuple(vendor_query),
    )


def _opt_str(fields: dict[str, object], key: str) -> str | None:
    value = fields.get(key)
    return value if isinstance(value, str) else None


def _opt_bytes(fields: dict[str, object], key: str) -> bytes | None:
    value = fields.get(key)
    return value if isinstance(value, bytes) else None


def _opt_int(fields: dict[str, object], key: str) -> int | None:
    value = fields.get(key)
    return value if isinstance(value, int) else None


def _encode(value: bytes, allowed: frozenset[str], encode_all: bool = False) -> str:
    return "".join(chr(b) if not encode_all and chr(b) in allowed else f"%{b:02X}" for b in value)


def format_pkcs11_uri(uri: Pkcs11Uri) -> str:
    """The canonical text of a URI (for logs and messages; it never holds a PIN)."""
    path: list[str] = []
    for name, attr in _PATH_TEXT.items():
        value = getattr(uri, attr)
        if value is not None:
            path.append(f"{name}={_encode(value.encode(), _PATH_CHARS)}")
    if uri.id is not None:
        path.append(f"id={_encode(uri.id, _PATH_CHARS, encode_all=True)}")
    if uri.slot_id is not None:
        path.append(f"slot-id={uri.slot_id}")
    for name, value in uri.vendor_path:
        path.append(f"{name}={_encode(value.encode(), _PATH_CHARS)}")
    query: list[str] = []
    for name, attr in _QUERY_TEXT.items():
        value = getattr(uri, attr)
        if value is not None:
            query.append(f"{name}={_encode(value.encode(), _QUERY_CHARS)}")
    for name, value in uri.vendor_query:
        query.append(f"{name}={_encode(value.encode(), _QUERY_CHARS)}")
    text = SCHEME + ";".join(path)
    return text + ("?" + "&".join(query) if query else "")
