"""The coordinator's checkpoint: atomic .npz + JSON, FedAdam's moments, refusals."""

import json
from dataclasses import replace

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord
from flwr.serverapp.strategy import FedAdam, FedAvg

from fedrisk.server.checkpoint import (
    CHECKPOINT_DIR,
    STATE_FILE,
    Checkpoint,
    CheckpointError,
    CheckpointWriter,
    config_digest,
    load_checkpoint,
    restore_strategy,
    strategy_state,
)
from fedrisk.simulations.entry import check_overrides


def _model(seed: int) -> ArrayRecord:
    rng = np.random.default_rng(seed)
    return ArrayRecord(
        {
            "b.weight": Array(rng.normal(size=(3, 2)).astype(np.float32)),
            "a.bias": Array(rng.normal(size=3).astype(np.float32)),
        }
    )


def _adam_with_moments() -> FedAdam:
    strategy = FedAdam()
    rng = np.random.default_rng(1)
    strategy.m_t = {"b.weight": rng.normal(size=(3, 2)), "a.bias": rng.normal(size=3)}
    strategy.v_t = {"b.weight": rng.random((3, 2)), "a.bias": rng.random(3)}
    return strategy


def test_a_checkpoint_round_trips_model_moments_and_loop_state_exactly(tmp_path) -> None:
    settings = check_overrides(["strategy=fedadam"])
    writer = CheckpointWriter(tmp_path, run_id="r1", seed=3, config_sha256=config_digest(settings))
    adam = _adam_with_moments()
    records = [{"round": 1, "update_sha256": {"bank_a": "ab"}}, {"round": 2}]
    loop = {"rounds_completed": 2, "refusals": {"bank_c": "over budget"}, "last_central": {}}

    writer.save(2, model=_model(0), strategy=adam, loop=loop, records=records)
    loaded = load_checkpoint(tmp_path)
    fresh = FedAdam()
    restore_strategy(fresh, loaded.strategy)

    assert loaded.completed_round == 2 and loaded.run_id == "r1" and loaded.seed == 3
    assert list(loaded.model) == ["b.weight", "a.bias"]  # parameter order kept
    for name, array in _model(0).items():
        np.testing.assert_array_equal(loaded.model[name], array.numpy())
        assert loaded.model[name].dtype == np.float32
    for moment in ("m_t", "v_t"):
        for name, value in getattr(adam, moment).items():
            np.testing.assert_array_equal(getattr(fresh, moment)[name], value)
    assert loaded.loop == loop and loaded.records == records
    loaded.check_against(run_id="r1", settings=replace(settings, resume="/somewhere"))


def test_a_later_checkpoint_replaces_the_earlier_and_leaves_one_array_file(tmp_path) -> None:
    writer = CheckpointWriter(tmp_path, run_id="r1", seed=3, config_sha256="x")
    for round_ in (1, 2, 3):
        writer.save(round_, model=_model(round_), strategy=FedAvg(), loop={}, records=[])

    folder = tmp_path / CHECKPOINT_DIR
    assert sorted(p.name for p in folder.iterdir()) == ["round-00003.npz", STATE_FILE]
    loaded = load_checkpoint(tmp_path)
    np.testing.assert_array_equal(loaded.model["a.bias"], _model(3)["a.bias"].numpy())
    assert strategy_state(FedAvg()) == {} and loaded.strategy == {}


def test_fedadam_before_its_first_aggregation_has_no_moments_to_save() -> None:
    assert strategy_state(FedAdam()) == {}
    assert set(strategy_state(_adam_with_moments())) == {"0.m_t", "0.v_t"}


def test_a_checkpoint_of_another_run_or_configuration_is_refused(tmp_path) -> None:
    settings = check_overrides([])
    checkpoint = Checkpoint(
        run_id="r1", completed_round=1, seed=42, config_sha256=config_digest(settings), model={}
    )

    with pytest.raises(CheckpointError, match="the checkpoint is of run r1; the resumed run is r2"):
        checkpoint.check_against(run_id="r2", settings=settings)
    with pytest.raises(CheckpointError, match="written under another configuration"):
        checkpoint.check_against(run_id="r1", settings=replace(settings, rounds=11))


def test_missing_or_unreadable_checkpoints_fail_with_one_line_naming_the_file(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="holds no complete checkpoint"):
        load_checkpoint(tmp_path)
    writer = CheckpointWriter(tmp_path, run_id="r1", seed=3, config_sha256="x")
    writer.save(1, model=_model(0), strategy=FedAvg(), loop={}, records=[])
    state = tmp_path / CHECKPOINT_DIR / STATE_FILE
    state.write_text(json.dumps({**json.loads(state.read_text()), "version": 99}))

    with pytest.raises(CheckpointError, match=r"state.json: `version` must be 1; got 99"):
        load_checkpoint(tmp_path)
    state.write_text("{")
    with pytest.raises(CheckpointError, match="unreadable checkpoint"):
        load_checkpoint(tmp_path)


def test_restoring_state_the_strategy_cannot_hold_is_refused() -> None:
    with pytest.raises(CheckpointError, match=r"strategy state '3\.m_t' this run lacks"):
        restore_strategy(FedAvg(), {"3.m_t": {}})
