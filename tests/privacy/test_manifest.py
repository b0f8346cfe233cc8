from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fedrisk.privacy.manifest import ConsortiumManifest, InstitutionRecord, UnknownInstitution
from fedrisk.secure.signing import generate_signing_key, public_key_text


def _record(name: str, epsilon: float = 8.0, delta: float = 1e-5) -> InstitutionRecord:
    key = public_key_text(generate_signing_key().public_key())
    return InstitutionRecord(name=name, public_key=key, budget_epsilon=epsilon, budget_delta=delta)


def _manifest() -> ConsortiumManifest:
    return ConsortiumManifest(name="pilot", institutions=(_record("bank_a"), _record("bank_b")))


def test_save_load_round_trip(tmp_path: Path) -> None:
    manifest = _manifest()
    path = tmp_path / "manifest.json"

    manifest.save(path)

    assert ConsortiumManifest.load(path) == manifest
    assert not [p for p in tmp_path.iterdir() if p.name != "manifest.json"]
    manifest.save(path)  # replacing an existing manifest is fine
    assert ConsortiumManifest.load(path) == manifest


def test_public_key_lookup() -> None:
    manifest = _manifest()

    key = manifest.public_key("bank_b")

    assert public_key_text(key) == manifest.institutions[1].public_key
    with pytest.raises(UnknownInstitution, match="got 'bank_z'"):
        manifest.public_key("bank_z")
    with pytest.raises(ValueError):  # UnknownInstitution is a ValueError
        manifest.institution("bank_z")


def test_integer_budgets_become_floats(tmp_path: Path) -> None:
    record = _record("bank_a", epsilon=8)

    assert isinstance(record.budget_epsilon, float)


def _saved(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    path = tmp_path / "manifest.json"
    _manifest().save(path)
    return path, json.loads(path.read_text())


def _institution(i: int, **changes: object) -> Callable[[dict[str, Any]], None]:
    return lambda m: m["institutions"][i].update(changes)


def _same_key(m: dict[str, Any]) -> None:
    m["institutions"][1]["public_key"] = m["institutions"][0]["public_key"]


def _drop_delta(m: dict[str, Any]) -> None:
    del m["institutions"][0]["budget_delta"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(version=2), "`version` must be 1; got 2"),
        (lambda m: m.update(extra=1), "`manifest` must be an object with keys"),
        (_institution(1, name="bank_a"), r"`institutions\[\].name` must be unique"),
        (_same_key, "public_key` must be unique"),
        (_institution(0, public_key="AAAA"), r"\[0\]: `public_key` of 'bank_a' must decode"),
        (
            _institution(1, budget_epsilon=0),
            r"\[1\]: `budget_epsilon` of 'bank_b' must be positive",
        ),
        (_institution(1, budget_delta=1.0), r"`budget_delta` of 'bank_b' must be in \(0, 1\)"),
        (_drop_delta, r"`institutions\[0\]` must be an object with keys"),
        (_institution(0, name="../x"), "`name` must match"),
    ],
)
def test_load_names_file_and_field(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    path, obj = _saved(tmp_path)
    edit(obj)
    path.write_text(json.dumps(obj))

    with pytest.raises(ValueError, match=message) as excinfo:
        ConsortiumManifest.load(path)
    assert str(excinfo.value).startswith(f"manifest {path}: ")


def test_load_rejects_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text("{not json")

    with pytest.raises(ValueError, match=r"manifest .*manifest\.json: not valid JSON"):
        ConsortiumManifest.load(path)


def test_constructor_validates() -> None:
    with pytest.raises(ValueError, match="`budget_delta`"):
        _record("bank_a", delta=0.0)
    with pytest.raises(ValueError, match="`version` must be 1"):
        ConsortiumManifest(name="pilot", institutions=(_record("bank_a"),), version=3)
    with pytest.raises(ValueError, match="`institutions` must be a tuple"):
        ConsortiumManifest(name="pilot", institutions=[_record("bank_a")])  # type: ignore[arg-type]
