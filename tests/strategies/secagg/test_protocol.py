from __future__ import annotations

import numpy as np
import pytest

from fedrisk.strategies.secagg.key_shares import key_share_threshold
from fedrisk.strategies.secagg.masking import reveal
from fedrisk.strategies.secagg.round_info import RoundInfo
from fedrisk.strategies.secagg.wire import (
    REVEALED_KEY_PREFIX,
    REVEALED_SHARE_PREFIX,
    ProtocolAbort,
    Rule,
    Stage,
)

from . import harness
from .harness import SimRound, round_info

GRAPHS = [(5, 0), (10, 2), (10, 4)]


def make_round(banks: int, *, degree: int = 0, threshold: int = 0, **kwargs: int) -> SimRound:
    """A round at the strict-majority threshold unless ``threshold`` is given.

    These tests pin the unmasking mechanics at the lowest threshold the protocol still
    accepts (set explicitly); the default threshold, above two thirds, and what the
    lower one gives up against an active coordinator are in the attack tests of
    ``tests/client/test_secagg_node.py``.
    """
    holders = (banks - 1 if degree == 0 or degree >= banks - 1 else degree) + 1
    return harness.make_round(
        banks, degree=degree, threshold=threshold or holders // 2 + 1, **kwargs
    )


def _holders_left(sim: SimRound, node: int, alive: set[int]) -> int:
    """Holders of ``node``'s self-mask shares still present: its neighbours and itself."""
    return len(set(sim.info.graph[node]) & alive) + (node in alive)


def _names(*indices: int) -> set[str]:
    return {f"bank-{i}" for i in indices}


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize(("banks", "degree"), GRAPHS)
def test_sum_without_dropouts_is_the_exact_modular_sum(bits: int, banks: int, degree: int) -> None:
    sim = make_round(banks, bits=bits, degree=degree, length=257)

    outcome = sim.run()

    assert outcome.total is not None and outcome.reason == "" and outcome.silent == []
    np.testing.assert_array_equal(outcome.total, sim.plaintext_sum(sim.info.institution_of))
    assert outcome.total.dtype == np.dtype(f"uint{bits}")
    for node, masked in sim.masked.items():
        assert np.count_nonzero(masked.vector == sim.vectors[node]) < 5  # really masked


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize(
    ("dropped", "slack"),
    [({"bank-3"}, 2), ({"bank-3", "bank-5"}, 1), ({"bank-1", "bank-3", "bank-5"}, 0)],
    ids=["above", "above-by-one", "at"],
)
def test_train_dropouts_down_to_the_threshold_recover_exactly(
    bits: int, dropped: set[str], slack: int
) -> None:
    sim = make_round(7, bits=bits)
    alive = {n for name, n in sim.info.node_of.items() if name not in dropped}
    assert sim.info.threshold == 4
    assert min(_holders_left(sim, n, alive) for n in alive) == 4 + slack

    outcome = sim.run(dropped=dropped)

    assert outcome.total is not None, outcome.reason
    np.testing.assert_array_equal(outcome.total, sim.plaintext_sum(alive))
    assert sim.unmasker.dropped == sorted(sim.node(name) for name in dropped)


@pytest.mark.parametrize("bits", [32, 64])
def test_sparse_graph_train_dropout_at_the_threshold_recovers_exactly(bits: int) -> None:
    sim = make_round(10, bits=bits, degree=4)
    gone = {sim.node("bank-6"), sim.info.graph[sim.node("bank-6")][0]}
    alive = set(sim.info.institution_of) - gone
    assert sim.info.threshold == 3
    assert min(_holders_left(sim, n, alive) for n in alive) == 3

    outcome = sim.run(dropped={sim.name(n) for n in gone})

    assert outcome.total is not None, outcome.reason
    np.testing.assert_array_equal(outcome.total, sim.plaintext_sum(alive))


def test_train_dropouts_below_the_threshold_fail_closed_and_nobody_reveals() -> None:
    sim = make_round(5)

    outcome = sim.run(dropped={"bank-1", "bank-3", "bank-4"})

    assert outcome.total is None
    # 2 survivors of 5 holders, threshold 3: both refuse, so not one share is revealed
    assert set(sim.refused) == {"bank-0", "bank-2"}
    assert all(err.rule is Rule.survivor_threshold for err in sim.refused.values())
    for name in ("bank-0", "bank-2"):
        assert f"{name}'s self-mask has 0 of 3 shares" in outcome.reason
    assert outcome.reason.count("self-mask") == 2
    for name in ("bank-1", "bank-3", "bank-4"):
        assert f"{name}'s round key has 0 of 3 shares" in outcome.reason


def test_degree_two_ring_recovers_from_one_dropout() -> None:
    sim = make_round(9, degree=2)
    gone = sim.node("bank-4")
    assert sim.info.threshold == 2

    outcome = sim.run(dropped={"bank-4"})

    assert outcome.total is not None, outcome.reason
    np.testing.assert_array_equal(
        outcome.total, sim.plaintext_sum(set(sim.info.institution_of) - {gone})
    )


def test_degree_two_ring_fails_closed_when_both_neighbours_of_a_bank_drop() -> None:
    sim = make_round(9, degree=2)
    lonely = sim.node("bank-4")

    outcome = sim.run(dropped={sim.name(n) for n in sim.info.graph[lonely]})

    assert outcome.total is None
    # bank-4 alone of its 3 holders survives (threshold 2): it refuses to reveal
    assert outcome.reason == "bank-4's self-mask has 0 of 2 shares"
    assert sim.refused["bank-4"].rule is Rule.survivor_threshold


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize(
    "silent", [{"bank-2"}, {"bank-2", "bank-4", "bank-6"}], ids=["above", "at"]
)
def test_unmask_silence_down_to_the_threshold_recovers_exactly(bits: int, silent: set[str]) -> None:
    sim = make_round(7, bits=bits)

    outcome = sim.run(silent=silent)

    assert outcome.total is not None, outcome.reason
    np.testing.assert_array_equal(outcome.total, sim.plaintext_sum(sim.info.institution_of))
    assert set(outcome.silent) == silent


@pytest.mark.parametrize("bits", [32, 64])
def test_sparse_graph_unmask_silence_at_the_threshold_recovers_exactly(bits: int) -> None:
    sim = make_round(10, bits=bits, degree=4)

    outcome = sim.run(silent={"bank-8"})

    assert outcome.total is not None, outcome.reason
    np.testing.assert_array_equal(outcome.total, sim.plaintext_sum(sim.info.institution_of))
    assert outcome.silent == ["bank-8"]


def test_unmask_silence_below_the_threshold_fails_closed_naming_the_short_shares() -> None:
    sim = make_round(7)
    silent = _names(1, 2, 4, 5)

    outcome = sim.run(silent=silent)

    assert outcome.total is None
    for i in range(7):  # 3 answering holders each (2 neighbours + own, or 3 neighbours)
        assert f"bank-{i}'s self-mask has 3 of 4 shares" in outcome.reason
    assert sorted(outcome.silent) == sorted(silent)


@pytest.mark.parametrize(("banks", "degree"), [(7, 0), (9, 0)])
def test_silent_bank_whose_neighbour_dropped_before_masking_is_recovered_via_the_round_key(
    banks: int, degree: int
) -> None:
    sim = make_round(banks, degree=degree)
    gone = sim.node("bank-1")
    silent = sim.name(sim.info.graph[gone][0])  # a neighbour of the dropped bank

    outcome = sim.run(dropped={"bank-1"}, silent={silent})

    assert outcome.total is not None, outcome.reason
    np.testing.assert_array_equal(
        outcome.total, sim.plaintext_sum(set(sim.info.institution_of) - {gone})
    )
    assert outcome.silent == [silent]


def test_dropped_round_key_with_too_few_answering_holders_fails_closed() -> None:
    sim = make_round(10, degree=4)
    gone = sim.node("bank-1")
    far = [n for n in sim.info.institution_of if n != gone and n not in sim.info.graph[gone]]
    silent = {sim.name(n) for n in far}  # 5 of the 9 holders; the 4 neighbours still answer
    assert key_share_threshold(9) == 5

    outcome = sim.run(dropped={"bank-1"}, silent=silent)

    assert outcome.total is None
    assert "bank-1's round key has 4 of 5 shares" in outcome.reason


@pytest.mark.parametrize(
    ("other", "fragment"),
    [
        ({"round": 2}, "replayed from round 2, this is round 3"),
        ({"round": 4}, "for round 4, this is round 3"),
        ({"run_tag": "another-run"}, "another run"),
    ],
)
def test_reply_from_another_round_or_run_is_rejected(other: dict, fragment: str) -> None:
    sim = make_round(5)
    stale = RoundInfo(
        run_tag=other.get("run_tag", sim.info.run_tag),
        salt=sim.info.salt,
        round=other.get("round", sim.info.round),
        node_of=sim.info.node_of,
        degree=0,
        threshold_setting=0,
    )
    node = sim.node("bank-2")
    masked = sim.mask(node)

    with pytest.raises(ProtocolAbort) as caught:
        sim.unmasker.accept(node, sim.reply(node, masked, info=stale))

    assert caught.value.stage is Stage.train and caught.value.peer == "bank-2"
    assert fragment in caught.value.reason
    assert sim.unmasker.survivors == []


def test_replayed_reply_does_not_displace_the_current_one() -> None:
    sim = make_round(5)
    sim.train()
    stale = round_info(5, round=2)
    node = sim.node("bank-0")

    with pytest.raises(ProtocolAbort, match="replayed"):
        sim.unmasker.accept(node, sim.reply(node, sim.masked[node], info=stale))
    outcome = sim.unmasker.finish(sim.reveals())

    assert outcome.total is not None
    np.testing.assert_array_equal(outcome.total, sim.plaintext_sum(sim.info.institution_of))


def test_late_reply_after_the_round_closed_is_rejected() -> None:
    sim = make_round(5)
    sim.train(dropped={"bank-4"})
    requests = sim.unmasker.requests()
    late = sim.node("bank-4")

    with pytest.raises(ProtocolAbort) as caught:
        sim.unmasker.accept(late, sim.reply(late, sim.mask(late)))

    assert caught.value.stage is Stage.train and caught.value.peer == "bank-4"
    assert "late reply" in caught.value.reason
    assert late not in sim.unmasker.survivors and late not in requests


@pytest.mark.parametrize(
    ("length", "dtype", "shown"),
    [(63, np.uint32, "uint32[63]"), (64, np.uint64, "uint64[64]"), (65, np.uint32, "uint32[65]")],
)
def test_reply_with_a_wrong_vector_length_or_dtype_is_rejected_naming_the_bank(
    length: int, dtype: type, shown: str
) -> None:
    sim = make_round(5, bits=32, length=64)
    node = sim.node("bank-3")
    masked = sim.mask(node, np.zeros(length, dtype=dtype))

    with pytest.raises(ProtocolAbort) as caught:
        sim.unmasker.accept(node, sim.reply(node, masked))

    assert caught.value.peer == "bank-3" and caught.value.stage is Stage.train
    assert caught.value.reason == f"masked vector is {shown}, expected uint32[64]"
    assert sim.unmasker.survivors == []


def test_reply_from_a_non_participant_is_rejected() -> None:
    sim = make_round(5)
    node = sim.node("bank-0")
    reply = sim.reply(node, sim.mask(node))

    with pytest.raises(ProtocolAbort, match="node 4242 is not a participant"):
        sim.unmasker.accept(4242, reply)


def test_share_tampered_in_transit_aborts_the_reveal_naming_the_sender() -> None:
    sim = make_round(5)
    sim.train()
    victim, sender = sim.node("bank-0"), sim.node("bank-3")

    def flip(node: int, sealed: dict[int, bytes]) -> None:
        if node == victim:
            blob = bytearray(sealed[sender])
            blob[-3] ^= 0x40
            sealed[sender] = bytes(blob)

    with pytest.raises(ProtocolAbort) as caught:
        sim.reveals(tamper=flip)

    assert caught.value.stage is Stage.unmask and caught.value.peer == "bank-3"
    assert caught.value.reason == "a self-mask share failed authentication"


def test_share_redirected_to_another_recipient_fails_authentication() -> None:
    sim = make_round(5)
    sim.train()
    victim, sender = sim.node("bank-0"), sim.node("bank-3")
    meant_for_bank_1 = sim.masked[sender].sealed_shares[sim.node("bank-1")]

    def redirect(node: int, sealed: dict[int, bytes]) -> None:
        if node == victim:
            sealed[sender] = meant_for_bank_1

    with pytest.raises(ProtocolAbort) as caught:
        sim.reveals(tamper=redirect)

    assert caught.value.peer == "bank-3"


def _reveal_both_secrets(sim: SimRound, holder: int, owner: int, records: dict) -> None:
    record = records[holder]
    assert REVEALED_SHARE_PREFIX + sim.name(owner) in record
    index = sorted(set(sim.info.node_of) - {sim.name(owner)}).index(sim.name(holder)) + 1
    record[REVEALED_KEY_PREFIX + sim.name(owner)] = bytes([index]) + bytes(range(32))


def test_reveal_of_both_a_self_mask_share_and_a_key_share_is_ignored_as_silence() -> None:
    sim = make_round(5)
    sim.train()
    records = sim.reveals()
    holder, owner = sim.node("bank-1"), sim.node("bank-2")
    _reveal_both_secrets(sim, holder, owner, records)

    outcome = sim.unmasker.finish(records)

    assert outcome.silent == ["bank-1"]
    assert outcome.total is not None
    np.testing.assert_array_equal(outcome.total, sim.plaintext_sum(sim.info.institution_of))


def test_reveal_of_both_secrets_contributes_no_share_either() -> None:
    sim = make_round(3)
    sim.train()
    records = sim.reveals(silent={"bank-2"})  # bank-1's own share + bank-0's suffice...
    holder, owner = sim.node("bank-0"), sim.node("bank-1")
    _reveal_both_secrets(sim, holder, owner, records)

    outcome = sim.unmasker.finish(records)  # ...unless bank-0's record is ignored

    assert outcome.total is None
    assert outcome.silent == ["bank-0", "bank-2"]
    assert "bank-1's self-mask has 1 of 2 shares" in outcome.reason


def test_reveal_replayed_from_an_earlier_round_counts_as_silence() -> None:
    sim = make_round(5)
    sim.train()
    records = sim.reveals()
    node = sim.node("bank-4")
    records[node]["round"] = sim.info.round - 1

    outcome = sim.unmasker.finish(records)

    assert outcome.silent == ["bank-4"]
    assert outcome.total is not None
    np.testing.assert_array_equal(outcome.total, sim.plaintext_sum(sim.info.institution_of))


@pytest.mark.parametrize(
    "survivors",
    [{1000, 1037, 1074, 1111, 1148, 9999}, {1037, 1074, 1111, 1148}],
    ids=["outsider", "without-me"],
)
def test_reveal_refuses_a_survivor_set_that_does_not_match_the_round(survivors: set[int]) -> None:
    sim = make_round(5)
    sim.train()
    me = sim.node("bank-0")
    assert set(sim.info.institution_of) == {1000, 1037, 1074, 1111, 1148}

    with pytest.raises(ProtocolAbort) as caught:
        reveal(
            me=me,
            keys=sim.keys[me],
            peers=sim.adverts,
            own=sim.adverts[me],
            info=sim.info,
            survivors=survivors,
            sealed_to_me={},
            key_shares_to_me={},
            institutions=sorted(sim.info.node_of),
            own_share=sim.masked[me].own_share,
        )

    assert caught.value.stage is Stage.unmask
    assert "survivor set" in caught.value.reason


def test_reveal_gives_key_shares_only_of_dropped_banks_and_self_mask_shares_of_survivors() -> None:
    sim = make_round(10, degree=4)
    gone = sim.node("bank-7")
    sim.train(dropped={"bank-7"})
    records = sim.reveals()

    assert len(records) == 9
    for holder, record in records.items():
        keys = {k for k in record if k.startswith(REVEALED_KEY_PREFIX)}
        shares = {k for k in record if k.startswith(REVEALED_SHARE_PREFIX)}
        assert keys == {REVEALED_KEY_PREFIX + "bank-7"}
        assert shares == {
            REVEALED_SHARE_PREFIX + sim.name(n)
            for n in (*sim.info.graph[holder], holder)
            if n != gone
        }


@pytest.mark.parametrize("bits", [32, 64])
def test_empty_vector_masks_and_unmasks(bits: int) -> None:
    sim = make_round(5, bits=bits, length=0, degree=2)

    outcome = sim.run(dropped={"bank-2"})

    assert outcome.total is not None, outcome.reason
    assert outcome.total.shape == (0,) and outcome.total.dtype == np.dtype(f"uint{bits}")


# --- reveals taken one at a time, as the coordinator pulls them -----------------------


def _complete_after(sim: SimRound, order: list[str], reveals: dict) -> int:
    """Feed ``reveals`` in ``order``; return how many were taken when the sum became complete."""
    for taken, name in enumerate(order, start=1):
        if sim.unmasker.take(sim.node(name), reveals[sim.node(name)]):
            return taken
    return 0


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize(("banks", "degree", "dropped"), [(9, 0, set()), (10, 4, {"bank-3"})])
def test_reveals_taken_one_by_one_unmask_as_soon_as_every_secret_has_enough_shares(
    bits: int, banks: int, degree: int, dropped: set[str]
) -> None:
    sim = make_round(banks, bits=bits, degree=degree, length=129)
    sim.train(dropped)
    alive = set(sim.unmasker.survivors)
    reveals = sim.reveals()
    order = sorted(sim.name(n) for n in alive)

    taken = _complete_after(sim, order, reveals)
    outcome = sim.unmasker.outcome(awaited_all=False)

    # complete exactly when the last secret reached its threshold, not before
    heard = {sim.node(name) for name in order[:taken]}
    for owner in alive:
        assert _holders_left(sim, owner, heard) >= sim.info.threshold
    assert 0 < taken < len(order)  # `_complete_after` stops at the first True
    assert outcome.total is not None, outcome.reason
    np.testing.assert_array_equal(outcome.total, sim.plaintext_sum(alive))
    assert outcome.silent == []
    assert outcome.not_awaited == order[taken:]


def test_a_round_unmasked_early_gives_the_same_sum_as_one_that_waited_for_every_reveal() -> None:
    early = make_round(9, bits=64, length=65, seed=4)
    early.train()
    reveals = early.reveals()
    for node in reversed(early.unmasker.survivors):  # a different arrival order
        if early.unmasker.take(node, reveals[node]):
            break

    waited = make_round(9, bits=64, length=65, seed=4)
    total = waited.run().total

    assert total is not None
    np.testing.assert_array_equal(early.unmasker.outcome(awaited_all=False).total, total)


def test_an_error_reply_counts_as_silence_and_a_second_reveal_from_a_bank_is_ignored() -> None:
    sim = make_round(7)
    sim.train()
    reveals = sim.reveals()
    first, second, *rest = sim.unmasker.survivors

    assert sim.unmasker.take(first, None) is False  # an error reply: silence
    assert sim.unmasker.take(first, reveals[first]) is False  # too late: heard once already
    for node in [second, *rest]:
        sim.unmasker.take(node, reveals[node])
    outcome = sim.unmasker.outcome(awaited_all=True)

    assert outcome.total is not None, outcome.reason
    np.testing.assert_array_equal(outcome.total, sim.plaintext_sum(sim.info.institution_of))
    assert outcome.silent == [sim.name(first)] and outcome.not_awaited == []


def test_stopping_before_the_sum_is_complete_fails_closed_listing_the_unheard_as_silent() -> None:
    sim = make_round(7)
    sim.train()
    reveals = sim.reveals()
    heard = sim.unmasker.survivors[:3]  # threshold 4: no secret has enough shares yet
    for node in heard:
        assert sim.unmasker.take(node, reveals[node]) is False

    outcome = sim.unmasker.outcome(awaited_all=False)

    assert outcome.total is None
    assert "self-mask has 3 of 4 shares" in outcome.reason
    assert outcome.silent == sorted(set(sim.info.node_of) - {sim.name(n) for n in heard})
    assert outcome.not_awaited == []


def test_reveals_arriving_after_the_sum_is_complete_are_heard_not_silent() -> None:
    sim = make_round(5)
    sim.train()
    reveals = sim.reveals()
    done = [sim.unmasker.take(node, record) for node, record in sorted(reveals.items())]

    outcome = sim.unmasker.outcome(awaited_all=True)

    assert done == [False, False, True, True, True]  # threshold 3 of each bank's 5 shares
    assert outcome.total is not None and outcome.silent == [] and outcome.not_awaited == []
    np.testing.assert_array_equal(outcome.total, sim.plaintext_sum(sim.info.institution_of))
