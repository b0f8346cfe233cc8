"""Server-side update validation: every injected corruption is rejected with its reason."""

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict

from fedrisk.client.faults import HUGE_NORM_FACTOR, corrupt_arrays
from fedrisk.conf.faults import CorruptionKind
from fedrisk.server.update_validation import MaskedShape, UpdateValidator
from fedrisk.strategies import messages
from fedrisk.strategies.secagg import wire

RUN = "run-1"


def _model(seed: int = 0) -> ArrayRecord:
    rng = np.random.default_rng(seed)
    return ArrayRecord(
        {
            "fc.weight": Array(rng.normal(size=(4, 3)).astype(np.float32)),
            "fc.bias": Array(rng.normal(size=4).astype(np.float32)),
        }
    )


def _step(model: ArrayRecord, size: float) -> ArrayRecord:
    """The model moved by an update of L2 norm ``size`` (all coordinates equal)."""
    n = sum(a.numpy().size for a in model.values())
    return ArrayRecord(
        {k: Array((a.numpy() + size / np.sqrt(n)).astype(np.float32)) for k, a in model.items()}
    )


def _reply(arrays: ArrayRecord, *, run: str = RUN, round_: int = 3) -> Message:
    content = RecordDict(
        {
            messages.ARRAYS: arrays,
            messages.BINDING: ConfigRecord({messages.RUN_ID: run, messages.SERVER_ROUND: round_}),
        }
    )
    return Message(content=content, dst_node_id=1, message_type="train")


def _check(validator: UpdateValidator, reply: Message, global_arrays: ArrayRecord) -> str | None:
    return validator.check(reply, institution="bank_a", server_round=3, global_arrays=global_arrays)


def test_an_honest_update_within_the_bound_passes() -> None:
    model = _model()
    validator = UpdateValidator(run_id=RUN, norm_bound=1.0)

    assert _check(validator, _reply(_step(model, 0.99)), model) is None


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (CorruptionKind.nan, "`fc.weight` holds NaN"),
        (CorruptionKind.inf, "`fc.weight` holds Inf"),
        (CorruptionKind.wrong_shape, "`fc.weight` has shape [3, 3], expected [4, 3]"),
        (CorruptionKind.wrong_dtype, "`fc.weight` has dtype float64, expected float32"),
    ],
)
def test_each_corruption_is_rejected_with_its_reason(kind: CorruptionKind, reason: str) -> None:
    model = _model()
    broken = corrupt_arrays(_step(model, 0.5), model, kind)

    assert _check(UpdateValidator(run_id=RUN), _reply(broken), model) == reason


def test_a_huge_norm_is_rejected_only_where_a_bound_is_known() -> None:
    model = _model()
    huge = corrupt_arrays(_step(model, 0.5), model, CorruptionKind.huge_norm)
    reply = _reply(huge)

    reason = _check(UpdateValidator(run_id=RUN, norm_bound=1.0), reply, model)
    assert reason is not None and reason.startswith("update norm ")
    norm = float(reason.split()[2])
    assert norm == pytest.approx(0.5 * HUGE_NORM_FACTOR, rel=1e-3)
    assert reason.endswith("exceeds the bound 1")
    # Without a bound (DP-SGD, no clipping configured) a large update is not evidence.
    assert _check(UpdateValidator(run_id=RUN), reply, model) is None


def test_replies_bound_to_another_round_or_run_or_unbound_are_rejected() -> None:
    model = _model()
    update = _step(model, 0.1)
    validator = UpdateValidator(run_id=RUN)
    unbound = Message(
        content=RecordDict({messages.ARRAYS: update}), dst_node_id=1, message_type="train"
    )

    assert _check(validator, _reply(update, round_=2), model) == (
        "reply is bound to round 2, not round 3"
    )
    assert _check(validator, _reply(update, run="old"), model) == (
        "reply is bound to run old, not run-1"
    )
    assert _check(validator, unbound, model) == "reply is not bound to a run and round"


def test_an_update_sent_in_an_earlier_round_is_a_replay() -> None:
    model = _model()
    update = _step(model, 0.1)
    validator = UpdateValidator(run_id=RUN)
    validator.remember_records(
        [{"round": 2, "update_sha256": {"bank_a": messages.update_digest(update)}}]
    )

    assert _check(validator, _reply(update), model) == "replays its update of round 2"
    # Another bank sending the same bytes is not bank_a's replay.
    other = validator.check(
        _reply(update), institution="bank_b", server_round=3, global_arrays=model
    )
    assert other is None


def test_parameter_names_must_match_the_global_model() -> None:
    model = _model()
    renamed = ArrayRecord({"w": model["fc.weight"], "fc.bias": model["fc.bias"]})

    assert _check(UpdateValidator(run_id=RUN), _reply(renamed), model) == (
        "update names parameters ['fc.bias', 'w'], expected ['fc.bias', 'fc.weight']"
    )


def test_masked_vectors_are_checked_for_length_and_dtype_only() -> None:
    model = _model()
    validator = UpdateValidator(run_id=RUN, masked=MaskedShape(length=5, dtype=np.dtype(np.uint64)))
    good = ArrayRecord({wire.VECTOR_KEY: Array(np.arange(5, dtype=np.uint64))})
    short = corrupt_arrays(good, None, CorruptionKind.wrong_shape)
    floats = corrupt_arrays(good, None, CorruptionKind.wrong_dtype)

    assert _check(validator, _reply(good), model) is None
    assert (
        _check(validator, _reply(short), model) == "masked vector is uint64[4], expected uint64[5]"
    )
    assert _check(validator, _reply(floats), model) == (
        "masked vector is float64[5], expected uint64[5]"
    )


def test_a_norm_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="`norm_bound` must be positive; got 0"):
        UpdateValidator(run_id=RUN, norm_bound=0)


def test_dtypes_are_those_of_the_initial_model_not_of_an_adaptive_global_model() -> None:
    initial = _model()
    # FedAdam's global model comes back as float64; institutions still train float32.
    adam_global = ArrayRecord({k: Array(a.numpy().astype(np.float64)) for k, a in initial.items()})
    validator = UpdateValidator(run_id=RUN, reference=initial)

    assert _check(validator, _reply(_step(initial, 0.1)), adam_global) is None
    assert _check(validator, _reply(adam_global), adam_global) == (
        "`fc.weight` has dtype float64, expected float32"
    )


def test_a_round_is_screened_and_every_digest_received_remembered() -> None:
    model = _model()
    good, bad = _step(model, 0.1), corrupt_arrays(_step(model, 0.2), model, CorruptionKind.nan)
    validator = UpdateValidator(run_id=RUN, reference=model)

    rejected = validator.screen(
        {"bank_a": _reply(good), "bank_b": _reply(bad)}, server_round=3, global_arrays=model
    )
    # The same bytes again in round 4 are replays, of an accepted and of a rejected update.
    again = validator.screen(
        {"bank_a": _reply(good, round_=4), "bank_b": _reply(bad, round_=4)},
        server_round=4,
        global_arrays=model,
    )

    assert rejected == {"bank_b": "`fc.weight` holds NaN"}
    assert again == {"bank_a": "replays its update of round 3", "bank_b": "`fc.weight` holds NaN"}
