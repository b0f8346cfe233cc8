"""``fedrisk data synth``: synthetic bank tables to try a consortium before real data.

Writes one CSV per bank from the synthetic generator, a held-out CSV for the
coordinator's central evaluation, and the schema file every node validates against.
The banks differ the way a generated simulated consortium's do
(:func:`fedrisk.simulations.consortium.institution_profiles`): power-law sizes,
borrower mixes, default-rate offsets and covariate shift, all drawn from the seed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pandas as pd

from fedrisk.conf.consortium import ConsortiumConfig, GeneratedInstitutions
from fedrisk.data.schema_file import schema_to_yaml
from fedrisk.data.synthetic import BankProfile, credit_schema, generate_credit_consortium
from fedrisk.privacy.ledger_format import INSTITUTION_PATTERN
from fedrisk.simulations.consortium import institution_profiles

TASKS = ("credit_default",)
"""Tasks with a synthetic generator."""

ROWS_PER_BANK = 2500
"""Default training rows per bank."""

MIN_ROWS_PER_BANK = 100
"""Fewest rows a bank may get (above the default DP batch of 64)."""

SCHEMA_FILE = "schema.yaml"
HELDOUT_FILE = "heldout.csv"
EXIT_USAGE = 2

USAGE = (
    "usage: fedrisk data synth --institutions NAME[,NAME…] --out DIR [--task TASK]\n"
    "                          [--rows N] [--seed S]\n"
    "  Write synthetic tables to try fedrisk before your own data is ready: DIR/<NAME>.csv\n"
    "  for each bank, DIR/heldout.csv for the coordinator's evaluation, and DIR/schema.yaml,\n"
    "  the schema the nodes validate against (the body of `task.schema`). Banks differ in\n"
    "  size (power law, the first listed is the largest), borrower mix and default rate.\n"
    f"  --task TASK   synthetic task; known: {', '.join(TASKS)} (default {TASKS[0]})\n"
    f"  --rows N      training rows over all banks (default {ROWS_PER_BANK:,} per bank,\n"
    f"                at least {MIN_ROWS_PER_BANK} per bank)\n"
    "  --seed S      root seed; the same seed and names give identical files (default 42)\n"
    "  Existing files in DIR are never overwritten. Exit 0 written, 2 bad input.\n"
)
"""Help text of ``fedrisk data synth``."""

# Heterogeneity of the written banks: the knobs of a generated simulated consortium.
_SIZE_EXPONENT = 1.0
_LABEL_SHIFT_SD = 0.3
_COVARIATE_SHIFT_SD = 0.15
_SUBPRIME_SHARE_RANGE = [0.05, 0.5]


@dataclass(frozen=True)
class SynthRequest:
    """What to write.

    Parameters
    ----------
    task : str
        One of :data:`TASKS`.
    institutions : list[str]
        Bank names: letters, digits, ``-``, ``_`` or ``.``, starting with a letter or
        digit (the manifest's rule), unique, at least one.
    out : pathlib.Path
        Directory to write into; created if missing.
    rows : int
        Training rows over all banks, at least ``MIN_ROWS_PER_BANK`` per bank.
    seed : int
        Non-negative root seed.

    Raises
    ------
    ValueError
        If any field breaks the constraints above.
    """

    task: str
    institutions: list[str]
    out: Path
    rows: int
    seed: int

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(
                f"`--task` must be a task with a synthetic generator ({', '.join(TASKS)}); "
                f"got {self.task!r}"
            )
        if not self.institutions:
            raise ValueError("`--institutions` must name at least one bank; got none")
        for name in self.institutions:
            if not INSTITUTION_PATTERN.fullmatch(name):
                raise ValueError(
                    "`--institutions` names must be 1-64 letters, digits, '-', '_' or '.', "
                    f"starting with a letter or digit; got {name!r}"
                )
        duplicates = sorted({n for n in self.institutions if self.institutions.count(n) > 1})
        if duplicates:
            raise ValueError(f"`--institutions` must be unique; got duplicates {duplicates}")
        reserved = Path(HELDOUT_FILE).stem
        if reserved in self.institutions:
            raise ValueError(
                f"`--institutions` must not include {reserved!r} (it names the held-out file)"
            )
        minimum = MIN_ROWS_PER_BANK * len(self.institutions)
        if self.rows < minimum:
            raise ValueError(
                f"`--rows` must be at least {MIN_ROWS_PER_BANK} per bank ({minimum}); "
                f"got {self.rows}"
            )
        if self.seed < 0:
            raise ValueError(f"`--seed` must be non-negative; got {self.seed}")

    @property
    def heldout_rows(self) -> int:
        """Rows of the held-out set: a quarter of the training rows, at least 1,000."""
        return max(1000, self.rows // 4)

    def targets(self) -> dict[str, Path]:
        """Return every file to write, keyed by bank name, ``heldout`` and ``schema``."""
        files = {name: self.out / f"{name}.csv" for name in self.institutions}
        files["heldout"] = self.out / HELDOUT_FILE
        files["schema"] = self.out / SCHEMA_FILE
        return files


def data_synth_command(argv: Sequence[str]) -> int:
    """Run ``fedrisk data synth``; return the exit code.

    Parameters
    ----------
    argv : Sequence[str]
        The options after ``fedrisk data synth`` (see :data:`USAGE`).

    Returns
    -------
    int
        0 when every file was written (a summary on stdout), 2 on bad input or when a
        target file already exists (one line on stderr, nothing written).
    """
    if any(arg in ("-h", "--help") for arg in argv):
        print(USAGE, end="")
        return 0
    try:
        request = _parse(argv)
        written = write_synthetic(request)
    except (ValueError, OSError) as err:
        print(f"fedrisk data synth: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    for line in _summary(request, written, label=credit_schema().label):
        print(line)
    return 0


def bank_profiles(names: Sequence[str], *, rows: int, seed: int) -> list[BankProfile]:
    """Draw heterogeneous bank profiles, as a generated simulated consortium does.

    Parameters
    ----------
    names : Sequence[str]
        Bank names, largest bank first.
    rows : int
        Training rows over all banks.
    seed : int
        Root seed of the profiles.

    Returns
    -------
    list[BankProfile]
        One profile per name, in order; a single bank gets every row and the default
        borrower mix without shifts.

    Raises
    ------
    ValueError
        If ``rows`` is below ``MIN_ROWS_PER_BANK`` per bank.
    """
    if len(names) == 1:
        return [BankProfile(name=names[0], n_rows=rows)]
    knobs = GeneratedInstitutions(
        count=len(names),
        total_rows=rows,
        size_exponent=_SIZE_EXPONENT,
        min_rows=MIN_ROWS_PER_BANK,
        label_shift_sd=_LABEL_SHIFT_SD,
        covariate_shift_sd=_COVARIATE_SHIFT_SD,
        subprime_share_range=list(_SUBPRIME_SHARE_RANGE),
    )
    generated = institution_profiles(ConsortiumConfig(name="synth", generate=knobs), seed=seed)
    return [
        BankProfile(
            name=name,
            n_rows=inst.rows,
            segment_mix=(inst.segment_mix[0], inst.segment_mix[1], inst.segment_mix[2]),
            label_shift=inst.label_shift,
            covariate_shift=inst.covariate_shift,
        )
        for name, inst in zip(names, generated, strict=True)
    ]


def write_synthetic(request: SynthRequest) -> dict[str, pd.DataFrame]:
    """Generate and write the request's files; return the tables written.

    Parameters
    ----------
    request : SynthRequest
        What to write and where.

    Returns
    -------
    dict[str, pandas.DataFrame]
        Each bank's table and ``heldout``, as written.

    Raises
    ------
    ValueError
        If a target file already exists or ``request.out`` is not a directory; nothing
        is written then.
    OSError
        If the directory or a file cannot be written.
    """
    targets = request.targets()
    if request.out.exists() and not request.out.is_dir():
        raise ValueError(f"`--out` must be a directory; got the file {request.out}")
    existing = [str(path) for path in targets.values() if path.exists()]
    if existing:
        raise ValueError(
            f"refusing to overwrite existing file(s) {', '.join(existing)} "
            "(choose another --out or remove them)"
        )
    profiles = bank_profiles(request.institutions, rows=request.rows, seed=request.seed)
    built = generate_credit_consortium(profiles, test_rows=request.heldout_rows, seed=request.seed)
    whole = [spec.name for spec in built.schema.features if spec.integer]
    tables = {
        key: table.astype(dict.fromkeys(whole, "int64"))
        for key, table in {**built.banks, "heldout": built.test}.items()
    }
    request.out.mkdir(parents=True, exist_ok=True)
    for key, table in tables.items():
        table.to_csv(targets[key], index=False, columns=built.schema.columns)
    header = (
        f"# Table schema of the {request.task} task (the body of `task.schema`), written by\n"
        "# `fedrisk data synth`; every node validates its CSV against it.\n"
    )
    targets["schema"].write_text(header + schema_to_yaml(built.schema), encoding="utf-8")
    return tables


def _summary(request: SynthRequest, tables: dict[str, pd.DataFrame], *, label: str) -> list[str]:
    targets = request.targets()
    lines = [f"wrote {request.task} data (seed {request.seed}) to {request.out}:"]
    for key, table in tables.items():
        rate = float(table[label].mean())
        what = "held-out set for the coordinator" if key == "heldout" else "bank"
        lines.append(
            f"  {targets[key].name}: {len(table):,} rows, default rate {rate:.1%} ({what})"
        )
    lines.append(f"  {SCHEMA_FILE}: the schema every node validates against (task.schema)")
    return lines


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def _parse(argv: Sequence[str]) -> SynthRequest:
    parser = _Parser(prog="fedrisk data synth", add_help=False)
    parser.add_argument("--task", default=TASKS[0])
    parser.add_argument("--institutions", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(list(argv))
    text = str(args.institutions).strip()
    names = [name.strip() for name in text.split(",")] if text else []
    rows = ROWS_PER_BANK * len(names) if args.rows is None else int(args.rows)
    return SynthRequest(
        task=str(args.task), institutions=names, out=args.out, rows=rows, seed=int(args.seed)
    )


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__
