"""The record ``setup`` writes: where a machine's configuration and tool are.

The model and its file format only; :mod:`cicd.host.record` reads and writes it on a
host. See there for who uses it and why.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from posixpath import join
from typing import Any

from cicd.core.errors import ConfigError

#: The record, relative to the user's home directory.
RECORD = ".config/cicd/config.toml"


@dataclass(frozen=True)
class Record:
    """Where a machine's configuration and tool are.

    Attributes:
        config: The absolute path of the configuration file.
        tool: The absolute path of the venv cicd runs from ("" when unknown).
    """

    config: str
    tool: str = ""

    def text(self) -> str:
        """The record's file content (TOML)."""
        lines = [
            "# Written by `cicd setup`: this machine's cicd configuration, used by",
            "# `cicd` here without CICD_CONFIG, and by `fab -H` from another machine.",
            f"config = {_toml_string(self.config)}",
        ]
        if self.tool:
            lines.append(f"tool = {_toml_string(self.tool)}")
        return "\n".join(lines) + "\n"

    def tool_defaults(self) -> dict[str, Any]:
        """The ``[tool.cicd]`` keys the tool venv provides, as on the machine itself.

        There, ``python`` and supervisord default to the tool's own; over SSH they
        would otherwise be looked up on a PATH the tool is not on.
        """
        if not self.tool:
            return {}
        bin_dir = join(self.tool, "bin")
        return {
            "python": join(bin_dir, "python"),
            "runtime": {
                "supervisord": join(bin_dir, "supervisord"),
                "supervisorctl": join(bin_dir, "supervisorctl"),
            },
        }


def _toml_string(value: str) -> str:
    # A TOML basic string: escape what would end it.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse(text: str, where: str) -> Record:
    """Read a record's content.

    Raises:
        ConfigError: Not TOML, or ``config`` (or ``tool``) is not an absolute path.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{where}: invalid TOML: {error}") from None
    config, tool = data.get("config"), data.get("tool", "")
    for key, value in (("config", config), ("tool", tool or "/")):
        if not isinstance(value, str) or not value.startswith("/"):
            raise ConfigError(f"{where}: {key} must be an absolute path")
    assert isinstance(config, str) and isinstance(tool, str)
    return Record(config, tool)


def local_path(home: Path | None = None) -> Path:
    """The record of the user running this process."""
    return (home or Path.home()) / RECORD
