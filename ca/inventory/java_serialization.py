"""Stepping over one serialised Java object, so that a JCEKS store with secret keys can be read.

A JCEKS secret-key entry is a `SealedObject` written with Java serialisation, with no length in
front of it: the only way to the entries after it is to parse the object's grammar (Java Object
Serialization Specification, chapter 6) far enough to know where it ends. Nothing is decoded
into values: class descriptions are kept (a later reference to one decides how its objects'
fields are laid out), every other element is skipped. Proxy classes and externalizable objects
without block data, which a sealed key never contains, are refused, as are nestings deeper than
`MAX_DEPTH`: a hostile store gets a one-line ValueError, never a deep recursion.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAGIC = b"\xac\xed\x00\x05"  # STREAM_MAGIC, STREAM_VERSION
MAX_DEPTH = 32
_BASE_HANDLE = 0x7E0000
_PRIMITIVE_BYTES = {ord(code): size for code, size in zip("BCDFIJSZ", (1, 2, 8, 4, 4, 8, 2, 1), strict=True)}
# the type codes (section 6.4.2) this reader meets; the others (exceptions, proxy classes) are refused
TC_NULL, TC_REFERENCE, TC_CLASSDESC, TC_OBJECT, TC_STRING, TC_ARRAY, TC_CLASS = range(0x70, 0x77)
TC_BLOCKDATA, TC_ENDBLOCKDATA, TC_RESET, TC_BLOCKDATALONG = 0x77, 0x78, 0x79, 0x7A
TC_LONGSTRING, TC_ENUM = 0x7C, 0x7E
SC_WRITE_METHOD, SC_EXTERNALIZABLE, SC_BLOCK_DATA = 0x01, 0x04, 0x08


@dataclass
class _ClassDescription:
    name: bytes
    flags: int = 0
    field_types: list[int] = field(default_factory=list)  # type codes, in stream order
    superclass: _ClassDescription | None = None


class BoundedReader:
    """Big-endian reads that never run past ``end``: running off it is a ValueError naming what
    was being read (the keystore's records and the serialised objects inside them share it)."""

    def __init__(self, data: bytes, offset: int, end: int) -> None:
        self.data, self.offset, self.end = data, offset, end

    def take(self, count: int, what: str) -> bytes:
        if count > self.end - self.offset:
            raise ValueError(f"truncated in {what}")
        chunk = self.data[self.offset : self.offset + count]
        self.offset += count
        return chunk

    def integer(self, size: int, what: str) -> int:
        return int.from_bytes(self.take(size, what), "big")


class _Stream(BoundedReader):
    def __init__(self, data: bytes, offset: int, end: int) -> None:
        super().__init__(data, offset, end)
        self.handles: list[object] = []

    def new_handle(self, value: object) -> None:
        self.handles.append(value)

    def content(self, depth: int) -> object:
        """Read one element and return what later parsing needs (a class description), else None."""
        if depth > MAX_DEPTH:
            raise ValueError(f"serialised object nested deeper than {MAX_DEPTH}")
        code = self.integer(1, "serialised object")
        if code == TC_NULL:
            return None
        if code == TC_REFERENCE:
            index = self.integer(4, "serialised reference") - _BASE_HANDLE
            if not 0 <= index < len(self.handles):
                raise ValueError("serialised reference to an unknown handle")
            return self.handles[index]
        if code in (TC_STRING, TC_LONGSTRING):
            self.take(self.integer(2 if code == TC_STRING else 8, "serialised string"), "serialised string")
            self.new_handle(None)
            return None
        if code == TC_CLASSDESC:
            return self._class_description(depth)
        if code in (TC_OBJECT, TC_ARRAY, TC_ENUM, TC_CLASS):
            self._instance(code, depth)
            return None
        if code == TC_BLOCKDATA or code == TC_BLOCKDATALONG:
            self.take(self.integer(1 if code == TC_BLOCKDATA else 4, "block data"), "block data")
            return None
        if code == TC_RESET:
            self.handles.clear()
            return self.content(depth)
        raise ValueError(f"serialised element 0x{code:02x} is not supported")

    def _class_description(self, depth: int) -> _ClassDescription:
        description = _ClassDescription(self.take(self.integer(2, "class name"), "class name"))
        self.take(8, "serialVersionUID")
        self.new_handle(description)
        description.flags = self.integer(1, "class flags")
        for _ in range(self.integer(2, "field count")):
            type_code = self.integer(1, "field type")
            self.take(self.integer(2, "field name"), "field name")
            if type_code in (ord("["), ord("L")):
                self.content(depth + 1)  # the field's class name, a string
            elif type_code not in _PRIMITIVE_BYTES:
                raise ValueError(f"serialised field type 0x{type_code:02x} is not supported")
            description.field_types.append(type_code)
        self._until_end_block(depth)  # class annotation
        superclass = self.content(depth + 1)
        if superclass is not None and not isinstance(superclass, _ClassDescription):
            raise ValueError("serialised superclass is not a class description")
        description.superclass = superclass
        return description

    def _instance(self, code: int, depth: int) -> None:
        description = self.content(depth + 1)
        if not isinstance(description, _ClassDescription):
            raise ValueError("serialised instance without a class description")
        self.new_handle(None)
        if code == TC_ARRAY:
            length, element = self.integer(4, "array length"), description.name[1:2]
            if element and element[0] in _PRIMITIVE_BYTES:
                self.take(length * _PRIMITIVE_BYTES[element[0]], "array")
            else:
                for _ in range(length):
                    self.content(depth + 1)
        elif code == TC_ENUM:
            self.content(depth + 1)  # the constant's name
        elif code == TC_OBJECT:
            self._class_data(description, depth)

    def _class_data(self, description: _ClassDescription, depth: int) -> None:
        hierarchy: list[_ClassDescription] = []
        current: _ClassDescription | None = description
        while current is not None:
            if len(hierarchy) > MAX_DEPTH:
                raise ValueError("serialised class hierarchy too deep")
            hierarchy.append(current)
            current = current.superclass
        for level in reversed(hierarchy):  # superclass data first
            if level.flags & SC_EXTERNALIZABLE:
                if not level.flags & SC_BLOCK_DATA:
                    raise ValueError("externalizable object without block data is not supported")
                self._until_end_block(depth)
                continue
            for type_code in level.field_types:
                if type_code in _PRIMITIVE_BYTES:
                    self.take(_PRIMITIVE_BYTES[type_code], "field value")
                else:
                    self.content(depth + 1)
            if level.flags & SC_WRITE_METHOD:
                self._until_end_block(depth)

    def _until_end_block(self, depth: int) -> None:
        """Skip annotation contents up to and including TC_ENDBLOCKDATA."""
        while True:
            if self.offset >= self.end:
                raise ValueError("truncated in annotation")
            if self.data[self.offset] == TC_ENDBLOCKDATA:
                self.offset += 1
                return
            self.content(depth + 1)


def skip_object(data: bytes, offset: int, end: int) -> int:
    """The offset just past the serialisation stream (header and one object) at ``offset``;
    ValueError when it is not one or runs past ``end``."""
    if data[offset : offset + 4] != MAGIC:
        raise ValueError("not a Java serialisation stream")
    stream = _Stream(data, offset + 4, end)
    stream.content(0)
    return stream.offset
