"""Typed, key-naming access to parsed YAML, for the configuration loaders."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from seatgate.errors import ConfigError


class Section:
    """Typed access to one mapping of the configuration, remembering which keys were read."""

    def __init__(self, data: object, prefix: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(prefix or "(top level)", "must be a mapping of keys to values")
        self.data: Mapping[Any, Any] = data
        self.prefix = prefix
        self.seen: set[str] = set()

    def _name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def _get(self, key: str) -> object:
        self.seen.add(key)
        return self.data.get(key)

    def raw(self, key: str) -> object:
        """The value under ``key`` as parsed (for shapes the typed readers do not cover)."""
        return self._get(key)

    def section(self, key: str) -> Section:
        value = self._get(key)
        return Section({} if value is None else value, self._name(key))

    def mapping(self, key: str) -> Mapping[str, object]:
        value = self._get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ConfigError(self._name(key), "must be a mapping")
        return value

    def string(self, key: str, default: str = "", *, required: bool = False) -> str:
        value = self._get(key)
        if value is None:
            if required:
                raise ConfigError(self._name(key), "is required")
            return default
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(self._name(key), f"must be a non-empty string, not {value!r}")
        return value.strip()

    def integer(self, key: str, default: int, *, minimum: int, maximum: int) -> int:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(self._name(key), f"must be a whole number, not {value!r}")
        if not minimum <= value <= maximum:
            raise ConfigError(self._name(key), f"must be between {minimum} and {maximum}")
        return value

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.string(key, default)
        if value not in choices:
            raise ConfigError(
                self._name(key), f"must be one of {', '.join(choices)}, not {value!r}"
            )
        return value

    def number(self, key: str, default: float, *, minimum: float, maximum: float) -> float:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(self._name(key), f"must be a number, not {value!r}")
        if not minimum <= value <= maximum:
            raise ConfigError(self._name(key), f"must be between {minimum} and {maximum}")
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(self._name(key), f"must be true or false, not {value!r}")
        return value

    def string_list(self, key: str) -> list[str]:
        value = self._get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise ConfigError(self._name(key), "must be a list of non-empty strings")
        return [v.strip() for v in value]

    def path(self, key: str, base_dir: Path) -> Path | None:
        value = self._get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(self._name(key), "must be a file path")
        resolved = (base_dir / value.strip()).resolve()
        if not resolved.is_file():
            raise ConfigError(self._name(key), f"file {resolved} does not exist")
        return resolved

    def reject_unknown(self) -> None:
        for key in self.data:
            if key not in self.seen:
                raise ConfigError(self._name(str(key)), "is not a known key (a typo?)")
