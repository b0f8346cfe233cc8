from pathlib import Path

import pytest
from omegaconf import OmegaConf

from fedrisk.conf.task import TaskConfig
from fedrisk.data import credit_schema, load_table, read_schema
from fedrisk.simulations.synth_data import USAGE, data_synth_command

BANKS = ["bank-a", "bank-b", "bank-c"]


def _synth(out: Path, *extra: str) -> int:
    return data_synth_command(["--institutions", ",".join(BANKS), "--out", str(out), *extra])


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    assert _synth(out, "--rows", "3000", "--seed", "7") == 0
    return out


def test_writes_one_csv_per_bank_the_heldout_set_and_the_schema(written, capsys):
    names = sorted(path.name for path in written.iterdir())

    assert names == ["bank-a.csv", "bank-b.csv", "bank-c.csv", "heldout.csv", "schema.yaml"]


def test_every_csv_loads_through_the_node_validation_with_the_written_schema(written):
    schema = read_schema(written / "schema.yaml")

    tables = {name: load_table(written / f"{name}.csv", schema, min_rows=64) for name in BANKS}
    heldout = load_table(written / "heldout.csv", schema, min_rows=1)

    assert schema == credit_schema()
    assert sum(len(table) for table in tables.values()) == 3000
    assert len(heldout) == 1000
    assert all(list(table.columns) == schema.columns for table in tables.values())


def test_schema_file_is_what_task_schema_accepts(written):
    body = OmegaConf.load(written / "schema.yaml")
    merged = OmegaConf.merge(
        OmegaConf.structured(TaskConfig), {"name": "credit_default", "schema": body}
    )

    task = OmegaConf.to_object(merged)

    assert isinstance(task, TaskConfig) and task.schema == credit_schema()


def test_banks_differ_in_size_and_default_rate(written):
    schema = read_schema(written / "schema.yaml")
    tables = [load_table(written / f"{name}.csv", schema) for name in BANKS]

    sizes = [len(table) for table in tables]
    rates = [float(table[schema.label].mean()) for table in tables]

    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 3
    assert len(set(rates)) == 3 and all(0.01 <= rate <= 0.25 for rate in rates)


def test_same_seed_writes_identical_files_and_another_seed_does_not(written, tmp_path):
    assert _synth(tmp_path / "same", "--rows", "3000", "--seed", "7") == 0
    assert _synth(tmp_path / "other", "--rows", "3000", "--seed", "8") == 0

    for path in written.iterdir():
        assert (tmp_path / "same" / path.name).read_bytes() == path.read_bytes()
    assert (tmp_path / "other" / "bank-a.csv").read_bytes() != (written / "bank-a.csv").read_bytes()


def test_default_rows_and_one_bank(tmp_path, capsys):
    code = data_synth_command(["--institutions", "solo", "--out", str(tmp_path)])

    out = capsys.readouterr().out
    assert code == 0
    assert "solo.csv: 2,500 rows" in out and "schema.yaml" in out
    assert len(load_table(tmp_path / "solo.csv", read_schema(tmp_path / "schema.yaml"))) == 2500


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--institutions", "bank a"], "got 'bank a'"),
        (["--institutions", "a,b,a"], "duplicates ['a']"),
        (["--institutions", ""], "at least one bank"),
        (["--institutions", "a,,b"], "got ''"),
        (["--institutions", "heldout"], "held-out file"),
        (["--institutions", "a", "--task", "fraud"], "credit_default); got 'fraud'"),
        (["--institutions", "a,b", "--rows", "150"], "at least 100 per bank (200); got 150"),
        (["--institutions", "a", "--rows", "many"], "invalid int value"),
        (["--institutions", "a", "--seed", "-1"], "non-negative"),
        (["--institutions", "a", "--bogus"], "unrecognized arguments"),
        ([], "required"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "out"

    code = data_synth_command([*argv, "--out", str(out)] if argv else [])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("fedrisk data synth: ") and err.count("\n") == 1
    assert message in err
    assert not out.exists()


def test_refuses_to_overwrite_existing_files(tmp_path, capsys):
    (tmp_path / "bank-b.csv").write_text("mine\n")

    code = _synth(tmp_path)

    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "refusing to overwrite" in err and "bank-b.csv" in err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bank-b.csv"]
    assert (tmp_path / "bank-b.csv").read_text() == "mine\n"


def test_help_prints_usage(capsys):
    assert data_synth_command(["--help"]) == 0

    assert capsys.readouterr().out == USAGE
    assert USAGE.startswith("usage: fedrisk data synth")
