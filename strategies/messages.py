"""Names in the Message contract between the coordinator and the institutions' nodes.

Both the ServerApp and the ClientApp import these, so a record key is spelled once.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from fedrisk.conf.root import RUN_CONFIG_KEY, FedriskConfig, settings_to_json

#: RecordDict keys.
ARRAYS = "arrays"
CONFIG = "config"
METRICS = "metrics"
NODE = "node"

#: Keys inside the ``config`` ConfigRecord the server sends.
SERVER_ROUND = "server-round"
PROXIMAL_MU = "proximal-mu"
#: True in the config of the one evaluation of a run's final model (after its last round);
#: every other evaluation is of a model the nodes were sent to train from.
FINAL_MODEL = "final-model"

#: Keys inside the ``node`` ConfigRecord every reply carries.
INSTITUTION = "institution"

#: A reply that declines to train carries this ConfigRecord instead of arrays.
REFUSAL = "refusal"
REFUSAL_REASON = "reason"
#: The bank policy rule a refusal names (`fedrisk.client.policy_rules`).
REFUSAL_RULE = "rule"
#: Config record of a reply that sends an already released round again
#: (`fedrisk.privacy.resend.ResendStatement`, signed by the bank).
RESENT = "resent"

#: Privacy figures in a reply's MetricRecord.
EPSILON = "epsilon"
EPSILON_BUDGET = "epsilon-budget"
DELTA = "delta"
NOISE_MULTIPLIER = "noise-multiplier"
UPDATE_SHA256 = "update-sha256"

#: The coordinator's request for an institution's signed ledger, and its reply record.
LEDGER_MESSAGE_TYPE = "query.ledger"
LEDGER = "ledger"
LEDGER_FILE = "file"
LEDGER_CONTENT = "content"

#: The coordinator's request for explanations of the final model, and its reply record
#: (one list of per-feature sums per method, keyed by the method's name).
EXPLAIN_MESSAGE_TYPE = "query.explain"
EXPLANATION = "explanation"
EXPLAIN_BASELINE = "baseline"
EXPLAIN_FEATURES = "features"
EXPLAIN_ROWS = "rows"

#: Keys of Flower's ``run_config`` (besides the fedrisk configuration itself).
RUN_DIR = "run-dir"
DATA_DIR = "data-dir"
TEST_PATH = "test-path"
INSTITUTIONS = "institutions"
MANIFEST = "manifest"
STATE_DIR = "state-dir"
#: fedrisk's own run id: the ledgers' ``run_id``, the same before and after a resume.
RUN_ID = "fedrisk-run-id"
#: The server resumes the run in ``run-dir`` from its checkpoint when this is "true".
RESUME = "resume"

#: ConfigRecord every training reply carries: the run and round it answers.
BINDING = "binding"

#: Keys of a node's ``node_config`` in deployment.
NODE_INSTITUTION = "institution"
NODE_DATA_PATH = "data-path"
NODE_STATE_DIR = "state-dir"
NODE_MANIFEST = "manifest"
#: The bank's own policy file (`fedrisk.client.policy`), kept at the node.
NODE_POLICY = "policy"
#: The bank's own schema file (``fedrisk node --schema``), if its policy names none.
NODE_SCHEMA = "schema"
#: Key Flower's simulation engine sets in every virtual node's ``node_config``.
PARTITION_ID = "partition-id"


def build_run_config(
    settings: FedriskConfig,
    *,
    run_dir: str,
    data_dir: str,
    test_path: str,
    institutions: Sequence[str],
    manifest: str = "",
    state_dir: str = "",
    run_id: str = "",
    resume: bool = False,
) -> dict[str, str]:
    """Assemble the ``run_config`` a ServerApp and its ClientApps start from.

    ``manifest`` (the consortium's public keys and budgets) and ``state_dir`` (where
    simulated institutions keep keys and ledgers) are empty without DP. ``run_id`` is
    fedrisk's run id (Flower's own is used when empty); ``resume`` makes the server
    continue from the checkpoint in ``run_dir``.
    """
    return {
        RUN_ID: run_id,
        RESUME: "true" if resume else "",
        RUN_CONFIG_KEY: settings_to_json(settings),
        RUN_DIR: run_dir,
        DATA_DIR: data_dir,
        TEST_PATH: test_path,
        INSTITUTIONS: json.dumps(list(institutions)),
        MANIFEST: manifest,
        STATE_DIR: state_dir,
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


def run_id_of(run_config: Mapping[str, object]) -> str | None:
    """Return fedrisk's run id from the run config, or None when the launcher set none."""
    value = run_config.get(RUN_ID)
    return str(value) if value else None


class MalformedMessage(ValueError):
    """A message lacks a record or value the contract requires, or has the wrong type."""


def arrays_of(content: RecordDict) -> ArrayRecord:
    """Return the ``arrays`` record of a message."""
    if ARRAYS not in content.array_records:
        raise MalformedMessage(
            f"message must carry an ArrayRecord `{ARRAYS}`; got {sorted(content)}"
        )
    return content.array_records[ARRAYS]


def metrics_of(content: RecordDict) -> MetricRecord:
    """Return the ``metrics`` record of a message."""
    if METRICS not in content.metric_records:
        raise MalformedMessage(
            f"message must carry a MetricRecord `{METRICS}`; got {sorted(content)}"
        )
    return content.metric_records[METRICS]


def config_of(content: RecordDict, key: str = CONFIG) -> ConfigRecord:
    """Return a ConfigRecord of a message (``config`` by default, or ``node``)."""
    if key not in content.config_records:
        raise MalformedMessage(f"message must carry a ConfigRecord `{key}`; got {sorted(content)}")
    return content.config_records[key]


def number(record: MetricRecord | ConfigRecord, key: str) -> float:
    """Return a scalar number (not a bool or a list) from a record."""
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedMessage(f"`{key}` must be a number; got {value!r}")
    return float(value)


def text(record: ConfigRecord, key: str) -> str:
    """Return a string from a ConfigRecord."""
    value = record.get(key)
    if not isinstance(value, str):
        raise MalformedMessage(f"`{key}` must be a string; got {value!r}")
    return value


#: Domain-separation label of update digests (ledger ``update_sha256``, server record).
UPDATE_DIGEST_LABEL = b"fedrisk/update-digest/v1"


def update_digest(arrays: ArrayRecord) -> str:
    """SHA-256 of an update: every array's name, dtype, shape and bytes, in name order.

    Both ends compute it: the institution signs it into its ledger, the coordinator
    records it for what it received, and the auditor compares the two.
    """
    digest = hashlib.sha256(UPDATE_DIGEST_LABEL + b"\x00")
    for name in sorted(arrays.keys()):
        array = np.ascontiguousarray(arrays[name].numpy())
        header = f"{name}|{array.dtype.str}|{','.join(map(str, array.shape))}|".encode()
        digest.update(len(header).to_bytes(4, "big") + header)
        digest.update(array.tobytes())
    return digest.hexdigest()


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def error_summary(reason: str | None) -> str:
    """Condense a node's error reply (often a whole remote traceback) to one line.

    Flower wraps a ClientApp exception as ``... Message: <text>``; the text after the
    last such marker is kept, else the last non-empty line.
    """
    reason = reason or ""
    text = _ANSI.sub("", reason)
    marker = "Message: "
    if marker in text:
        text = text.rsplit(marker, 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    summary = lines[0] if marker in reason and lines else (lines[-1] if lines else "")
    return summary.rstrip("'\">") or "unknown error"
