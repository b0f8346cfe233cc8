"""`fedrisk simulate resume=RUN_DIR`: what a run directory must hold to be resumed."""

from dataclasses import replace

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord
from flwr.serverapp.strategy import FedAvg
from omegaconf import OmegaConf

from fedrisk.conf.root import ConfigError
from fedrisk.server.checkpoint import CheckpointWriter, config_digest
from fedrisk.simulations.consortium import resolve_schema
from fedrisk.simulations.entry import check_overrides
from fedrisk.simulations.resume import resume_dir, resumed_config


def _run_dir(tmp_path, *overrides: str, checkpoint: bool = True, digest_of=None):
    settings = check_overrides(list(overrides))
    OmegaConf.save(OmegaConf.structured(settings), tmp_path / "config.yaml")
    if checkpoint:
        digest = config_digest(resolve_schema(digest_of or settings))
        writer = CheckpointWriter(tmp_path, run_id="abc", seed=settings.seed, config_sha256=digest)
        model = ArrayRecord({"w": Array(np.zeros(2, dtype=np.float32))})
        writer.save(1, model=model, strategy=FedAvg(), loop={}, records=[])
    return settings


def test_resume_takes_the_runs_own_config_and_run_id(tmp_path) -> None:
    _run_dir(tmp_path, "rounds=4", "privacy=dpsgd")

    cfg, run_id = resumed_config(tmp_path, [f"resume={tmp_path}"])

    assert run_id == "abc"
    assert cfg.rounds == 4 and cfg.privacy.mode == "dpsgd" and cfg.resume == str(tmp_path)
    assert resume_dir(["consortium=banks_3", f"resume={tmp_path}"]) == tmp_path.resolve()
    assert resume_dir(["rounds=3"]) is None


@pytest.mark.parametrize(
    "overrides",
    [("privacy=central",), ("secagg=secaggplus",), ("privacy=dpsgd", "secagg=secaggplus")],
)
def test_institution_level_dp_and_secure_aggregation_runs_can_be_resumed(
    tmp_path, overrides: tuple[str, ...]
) -> None:
    settings = _run_dir(tmp_path, *overrides)

    cfg, run_id = resumed_config(tmp_path, [f"resume={tmp_path}"])

    assert run_id == "abc"
    assert cfg.privacy.mode == settings.privacy.mode.value
    assert cfg.secagg.mode == settings.secagg.mode.value


def test_a_run_without_a_checkpoint_or_with_another_config_is_refused(tmp_path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _run_dir(tmp_path / "a", checkpoint=False)
    settings = check_overrides([])
    _run_dir(tmp_path / "b", digest_of=replace(settings, rounds=3))

    with pytest.raises(ConfigError, match="holds no complete checkpoint"):
        resumed_config(tmp_path / "a", [])
    with pytest.raises(ConfigError, match="written under another configuration"):
        resumed_config(tmp_path / "b", [])
