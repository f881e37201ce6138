"""Build hook: the wheel carries the web gate's gettext catalogs compiled (.mo).

Everything else about the package is in pyproject.toml. The compiled
catalogs are not kept in the source tree; ``build_py`` writes them from the
``.po`` files into the build, so an installed gate reads compiled catalogs.
"""

from __future__ import annotations

from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from setuptools import setup
from setuptools.command.build_py import build_py

TRANSLATIONS = Path("adapters/flask/translations")
INSTALLED_AS = Path("seatgate/adapters/flask/translations")


class BuildWithCatalogs(build_py):
    """build_py, then every ``messages.po`` compiled to ``messages.mo`` in the build."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the .po files of the checkout
        for source in sorted(TRANSLATIONS.glob("*/LC_MESSAGES/*.po")):
            language = source.parts[-3]
            with source.open("rb") as stream:
                catalog = read_po(stream, locale=language)
            target = Path(self.build_lib) / INSTALLED_AS / source.relative_to(TRANSLATIONS)
            target = target.with_suffix(".mo")
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as stream:
                write_mo(stream, catalog)


setup(cmdclass={"build_py": BuildWithCatalogs})
