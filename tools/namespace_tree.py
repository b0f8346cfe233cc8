"""Build ``build/ns/fedrisk``: the installed package layout as a tree of symlinks.

pyproject maps each top-level folder into the ``fedrisk`` namespace with setuptools'
``package-dir``. Editable installs resolve that mapping with an import hook, which
static tools (mypy, import-linter) do not run; they read this tree instead.
"""

from __future__ import annotations

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
    pkg = out / "fedrisk"
    pkg.mkdir(parents=True)
    for item in (root / mapping["fedrisk"]).iterdir():
        if item.name != "__pycache__":
            (pkg / item.name).symlink_to(item.resolve())
    for name, folder in mapping.items():
        if name != "fedrisk":
            (pkg / name.split(".", 1)[1]).symlink_to((root / folder).resolve())
    return out


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()))
