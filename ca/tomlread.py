"""Strict reading of TOML files and tables: unknown keys and wrong types are errors naming file and key.

Shared by the server config and the profile loader so both refuse mistakes the
same way ("conf/profiles/x.toml: validity.max_days: expected integer, got string").
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar, overload

from ca.errors import ConfigError

T = TypeVar("T")
_MISSING: Any = object()

_TYPE_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "table"}


def read_toml_file(path: Path, what: str = "file") -> dict[str, Any]:
    """The parsed file, or a ConfigError naming it; ``what`` names a missing one ("config file")."""
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _describe(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


class Table:
    """A view of one TOML table that remembers which keys were read."""

    def __init__(
        self, data: dict[str, Any], source: str, prefix: str = "", origins: Mapping[str, str] | None = None
    ) -> None:
        self._data = data
        self._source = source
        self._prefix = prefix
        self._seen: set[str] = set()
        # Dotted keys whose value came from elsewhere than the file (an environment variable),
        # so that an error names where the operator must look.
        self._origins: Mapping[str, str] = origins or {}

    @property
    def source(self) -> str:
        """The file this table came from (relative paths in it are relative to that file)."""
        return self._source

    def where(self, key: str) -> str:
        dotted = f"{self._prefix}{key}"
        origin = self._origins.get(dotted)
        return f"environment {origin}: {dotted}" if origin else f"{self._source}: {dotted}"

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.where(key)}: {message}")

    def has(self, key: str) -> bool:
        return key in self._data

    @overload
    def get(self, key: str, kind: type[T]) -> T: ...
    @overload
    def get(self, key: str, kind: type[T], default: T) -> T: ...

    def get(self, key: str, kind: type[T], default: T = _MISSING) -> T:
        self._seen.add(key)
        if key not in self._data:
            if default is _MISSING:
                raise self.error(key, "required key is missing")
            return default
        value = self._data[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise self.error(key, f"expected {_TYPE_NAMES.get(kind, kind.__name__)}, got {_describe(value)}")
        return value  # type: ignore[no-any-return]

    def strings(self, key: str, default: list[str] | None = None) -> list[str]:
        values = self.get(key, list, default if default is not None else _MISSING)
        for item in values:
            if not isinstance(item, str):
                raise self.error(key, f"expected an array of strings, found {_describe(item)}")
        return list(values)

    def members(self, key: str, allowed: Collection[str], what: str, default: list[str] | None = None) -> list[str]:
        """An array of strings, each one of ``allowed``; any other is refused as "unknown {what}"."""
        values = self.strings(key, default)
        for value in values:
            if value not in allowed:
                raise self.error(key, f"unknown {what} {value!r}")
        return values

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str:
        value = self.get(key, str, default if default is not None else _MISSING)
        if value not in choices:
            raise self.error(key, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def table(self, key: str, required: bool = False) -> Table:
        value = self.get(key, dict, _MISSING if required else {})
        return Table(value, self._source, f"{self._prefix}{key}.", self._origins)

    def tables(self, key: str) -> dict[str, Table]:
        """A table of tables, e.g. [issuers.NAME]."""
        outer = self.get(key, dict, {})
        result: dict[str, Table] = {}
        for name, inner in outer.items():
            if not isinstance(inner, dict):
                raise ConfigError(f"{self.where(f'{key}.{name}')}: expected table")
            result[name] = Table(inner, self._source, f"{self._prefix}{key}.{name}.", self._origins)
        return result

    def finish(self) -> None:
        """Refuse keys nobody asked for: typos must not be silently ignored."""
        unknown = sorted(set(self._data) - self._seen)
        if unknown:
            raise self.error(unknown[0], "unknown key")
