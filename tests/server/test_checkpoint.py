"""The coordinator's checkpoint: atomic .npz + JSON, FedAdam's moments, DP accountants."""

import json
from dataclasses import replace

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord
from flwr.serverapp.strategy import FedAdam, FedAvg
from flwr.supercore.privacy_accounting import GaussianPrivacyEvent
from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

from fedrisk.conf.privacy import NoiseSource, PrivacyConfig, PrivacyMode
from fedrisk.conf.strategy import StrategyConfig
from fedrisk.server.checkpoint import (
    CHECKPOINT_DIR,
    STATE_FILE,
    Checkpoint,
    CheckpointError,
    CheckpointWriter,
    config_digest,
    load_checkpoint,
)
from fedrisk.server.strategy_state import StrategyState, restore_strategy, strategy_state
from fedrisk.simulations.entry import check_overrides
from fedrisk.strategies import build_strategy
from fedrisk.strategies.central_dp import wrap_central_dp


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
    assert strategy_state(FedAvg()) == StrategyState() and loaded.strategy == StrategyState()


def test_fedadam_before_its_first_aggregation_has_no_moments_to_save() -> None:
    assert strategy_state(FedAdam()) == StrategyState()
    assert set(strategy_state(_adam_with_moments()).arrays) == {"0.m_t", "0.v_t"}


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

    with pytest.raises(CheckpointError, match=r"state.json: `version` must be one of 1, 2; got 99"):
        load_checkpoint(tmp_path)
    state.write_text("{")
    with pytest.raises(CheckpointError, match="unreadable checkpoint"):
        load_checkpoint(tmp_path)


def test_restoring_state_the_strategy_cannot_hold_is_refused() -> None:
    with pytest.raises(CheckpointError, match=r"strategy state '3\.m_t' this run lacks"):
        restore_strategy(FedAvg(), StrategyState(arrays={"3.m_t": {}}))


# -- privacy=central: Flower's RDP accountant -----------------------------------------

Z = 1.3


def _central(n_institutions: int = 3, budget: float = 8.0):
    """fedrisk's institution-level DP wrapper around FedAvg, as `coordinate` builds it."""
    config = StrategyConfig()
    return wrap_central_dp(
        build_strategy(config, n_institutions=n_institutions),
        PrivacyConfig(mode=PrivacyMode.central, central_noise_multiplier=Z, epsilon_budget=budget),
        config,
        n_institutions=n_institutions,
        seed=5,
        noise_source=NoiseSource.seeded,
    )


def _release(n_institutions: int = 3) -> GaussianPrivacyEvent:
    return GaussianPrivacyEvent(
        noise_multiplier=Z, sample_size=n_institutions, population_size=n_institutions
    )


def test_the_accountant_round_trips_through_a_checkpoint_and_composes_on(tmp_path) -> None:
    crashed = _central()
    for _ in range(2):
        crashed.accountant.compose(_release())
    uninterrupted = RdpAccountant(crashed.accountant.config)
    for _ in range(3):
        uninterrupted.compose(_release())
    writer = CheckpointWriter(tmp_path, run_id="r1", seed=5, config_sha256="x")

    writer.save(2, model=_model(0), strategy=crashed, loop={}, records=[])
    resumed = _central()
    restore_strategy(resumed, load_checkpoint(tmp_path).strategy)
    after_restore = resumed.accountant.get_privacy_spent()
    resumed.accountant.compose(_release())

    state = json.loads((tmp_path / CHECKPOINT_DIR / STATE_FILE).read_text())
    assert state["version"] == 2
    assert [c["count"] for c in state["accountants"]["0.accountant"]["compositions"]] == [1, 1]
    assert after_restore.epsilon == crashed.accountant.get_privacy_spent().epsilon
    assert after_restore.num_releases == 2
    assert resumed.accountant.get_epsilon(1e-5) == uninterrupted.get_epsilon(1e-5)
    assert resumed.accountant.get_epsilon(1e-5) > after_restore.epsilon
    assert resumed.accountant.num_releases == 3


def test_an_accountant_of_another_configuration_is_refused_naming_the_difference(
    tmp_path,
) -> None:
    writer = CheckpointWriter(tmp_path, run_id="r1", seed=5, config_sha256="x")
    three_banks = _central(n_institutions=3)
    three_banks.accountant.compose(_release(3))
    writer.save(1, model=_model(0), strategy=three_banks, loop={}, records=[])
    saved = load_checkpoint(tmp_path).strategy
    five_banks = _central(n_institutions=5)

    with pytest.raises(
        CheckpointError,
        match=r"accountant '0\.accountant' was kept under another privacy configuration "
        r"\(population_size 3, this run 5\)",
    ):
        restore_strategy(five_banks, saved)
    assert five_banks.accountant.num_releases == 0  # nothing half-restored
    with pytest.raises(CheckpointError, match=r"max_epsilon 8\.0, this run 4\.0"):
        restore_strategy(_central(budget=4.0), saved)


def test_an_accountant_missing_from_the_checkpoint_or_from_the_run_is_refused(tmp_path) -> None:
    writer = CheckpointWriter(tmp_path, run_id="r1", seed=5, config_sha256="x")
    writer.save(1, model=_model(0), strategy=FedAvg(), loop={}, records=[])
    state_path = tmp_path / CHECKPOINT_DIR / STATE_FILE
    state = json.loads(state_path.read_text())
    del state["accountants"]
    state_path.write_text(json.dumps({**state, "version": 1}))  # before accountants were kept
    version_1 = load_checkpoint(tmp_path)

    assert version_1.strategy == StrategyState()
    restore_strategy(FedAvg(), version_1.strategy)  # a run without DP continues from it
    with pytest.raises(CheckpointError, match=r"holds no state for the run's accountant '0\."):
        restore_strategy(_central(), version_1.strategy)
    with pytest.raises(CheckpointError, match=r"accountant state '0\.accountant' this run lacks"):
        restore_strategy(FedAvg(), strategy_state(_central()))


def test_tampered_accountant_state_is_one_checkpoint_error(tmp_path) -> None:
    state = strategy_state(_central())
    state.accountants["0.accountant"]["compositions"] = [{"event": {}, "count": 1}]

    with pytest.raises(CheckpointError, match=r"accountant '0\.accountant' is unreadable"):
        restore_strategy(_central(), state)
