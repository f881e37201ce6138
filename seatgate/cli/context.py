"""Shared state of one ``seatgate`` invocation."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path

import click

from seatgate.app import Core
from seatgate.clock import Clock
from seatgate.config import Config, load_config


@dataclass
class CliState:
    """What every command may need, built on first use."""

    config_path: Path
    clock: Clock | None = None
    _config: Config | None = None
    _app: Core | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def app(self, *, check_schema: bool = True) -> Core:
        if self._app is None:
            self._app = Core.build(self.config, clock=self.clock, check_schema=check_schema)
        return self._app

    @property
    def actor(self) -> str:
        """Who the audit log names for changes made from this command line."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        return f"cli:{user}"


pass_state = click.make_pass_decorator(CliState)
