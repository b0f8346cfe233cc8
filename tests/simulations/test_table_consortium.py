"""A real table split into banks: the banks' files, and keys provisioned for those banks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fedrisk.simulations.consortium import build_consortium, table_institutions
from fedrisk.simulations.entry import check_overrides
from fedrisk.simulations.provision import provision


def test_loanapp_banks_get_their_files_and_their_own_manifest_entries(tmp_path: Path) -> None:
    settings = check_overrides(["task=loanapp", "privacy=dpsgd"])

    built = build_consortium(settings, tmp_path / "data")
    banks = table_institutions(built)
    provisioned = provision(settings, banks, run_dir=tmp_path)

    names = [f"bank_0{i}" for i in range(1, 6)]
    assert built.institutions == names
    assert [b.name for b in banks] == names
    assert sum(b.rows for b in banks) == 1971 - 394  # complete rows minus the held-out 20%
    assert [b.rows for b in banks] == [
        len(pd.read_parquet(tmp_path / "data" / n / "train.parquet")) for n in names
    ]
    assert [r.name for r in provisioned.manifest.institutions] == names
    assert (tmp_path / "data" / "loanapp.csv").exists()
