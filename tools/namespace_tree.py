"""Build ``build/ns/fedrisk``: the installed package layout as a tree of hard links.

pyproject maps each top-level folder into the ``fedrisk`` namespace with setuptools'
``package-dir``. Editable installs resolve that mapping with an import hook, which
static tools (mypy, import-linter) do not run; they read this tree instead.
"""

from __future__ import annotations

import os
import shutil
import sys
import tomllib
from pathlib import Path


def build(root: Path) -> Path:
    """Create the symlink tree under ``root/build/ns`` and return its path."""
    mapping = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    out = root / "build" / "ns"
    shutil.rmtree(out, ignore_errors=True)
    # Real directories with hard-linked files: import-linter's walker neither follows
    # directory symlinks nor keeps a symlinked file's path.
    for name, folder in mapping.items():
        target = out.joinpath(*name.split("."))
        source = root / folder
        for item in source.rglob("*"):
            if "__pycache__" in item.parts or item.is_dir():
                continue
            relative = item.relative_to(source)
            if name == "fedrisk" or relative.parts[0] not in _nested(mapping, name):
                link = target / relative
                link.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(item, link)
                except OSError:  # another file system
                    shutil.copy2(item, link)
    return out


def _nested(mapping: dict[str, str], name: str) -> set[str]:
    """Sub-folders of ``name``'s folder that are packages mapped on their own."""
    return {key.split(".")[-1] for key in mapping if key.startswith(f"{name}.")}


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()))
