"""Names in the Message contract between the coordinator and the institutions' nodes.

Both the ServerApp and the ClientApp import these, so a record key is spelled once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from fedrisk.conf.root import RUN_CONFIG_KEY, FedriskConfig, settings_to_json

#: RecordDict keys.
ARRAYS = "arrays"
CONFIG = "config"
METRICS = "metrics"
NODE = "node"

#: Keys inside the ``config`` ConfigRecord the server sends.
SERVER_ROUND = "server-round"
PROXIMAL_MU = "proximal-mu"

#: Keys inside the ``node`` ConfigRecord every reply carries.
INSTITUTION = "institution"

#: Keys of Flower's ``run_config`` (besides the fedrisk configuration itself).
RUN_DIR = "run-dir"
DATA_DIR = "data-dir"
TEST_PATH = "test-path"
INSTITUTIONS = "institutions"

#: Keys of a node's ``node_config`` in deployment.
NODE_INSTITUTION = "institution"
NODE_DATA_PATH = "data-path"
#: Key Flower's simulation engine sets in every virtual node's ``node_config``.
PARTITION_ID = "partition-id"


def build_run_config(
    settings: FedriskConfig,
    *,
    run_dir: str,
    data_dir: str,
    test_path: str,
    institutions: Sequence[str],
) -> dict[str, str]:
    """Assemble the ``run_config`` a ServerApp and its ClientApps start from."""
    return {
        RUN_CONFIG_KEY: settings_to_json(settings),
        RUN_DIR: run_dir,
        DATA_DIR: data_dir,
        TEST_PATH: test_path,
        INSTITUTIONS: json.dumps(list(institutions)),
    }


def institutions_of(run_config: Mapping[str, object]) -> list[str]:
    """Institution ids of the run, in the order of the simulation's partition ids."""
    raw = run_config.get(INSTITUTIONS)
    if not isinstance(raw, str):
        raise ValueError(f"run config must list `{INSTITUTIONS}`; got {raw!r}")
    names = json.loads(raw)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"run config `{INSTITUTIONS}` must be a JSON list of ids; got {raw}")
    return names
