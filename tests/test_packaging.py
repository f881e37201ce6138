"""Every package of the source tree is listed for the wheel (the mapping is explicit)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_source_package_is_in_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "seatgate").rglob("__init__.py")
    }
    found |= {
        "seatgate.adapters"
        + "".join("." + p for p in init.parent.relative_to(ROOT / "adapters").parts)
        for init in (ROOT / "adapters").rglob("__init__.py")
    }
    assert found == listed
