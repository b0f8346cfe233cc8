"""An institution's side of SecAgg+: run keys in Context.state, peer checks, mask, reveal.

Every test drives real nodes (real Ed25519 keys in tmp_path state folders, a real
consortium manifest, one Flower ``Context`` per bank) against the real coordinator-side
``KeyRegistry`` and ``RoundUnmasker``, wired as ``SecureAggregation.configure_train``
wires them; messages are handed over in-process instead of through a Grid.
"""

from __future__ import annotations

import contextlib
import json
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from fedrisk.client import secagg_node
from fedrisk.client.node_keys import SIGNING_KEY_FILE, WRAP_KEY_FILE
from fedrisk.client.secagg_state import KEY_STATE, PEERS_STATE, ROUND_STATE, own_keys, peer_adverts
from fedrisk.conf.secagg import SecAggConfig
from fedrisk.privacy.manifest import ConsortiumManifest, InstitutionRecord
from fedrisk.secure.agreement import generate_agreement_key, public_bytes
from fedrisk.secure.masks import mask_vector
from fedrisk.secure.shamir import combine_seed
from fedrisk.secure.signing import (
    generate_signing_key,
    load_private_key,
    public_key_text,
    save_private_key,
    sign,
)
from fedrisk.strategies import messages
from fedrisk.strategies.secagg import wire
from fedrisk.strategies.secagg.advert import advertise, parse_advertisement, verify_advertisement
from fedrisk.strategies.secagg.consistency import statement
from fedrisk.strategies.secagg.encoding import Encoding, decode_sum, encode_update
from fedrisk.strategies.secagg.key_shares import (
    holders_of,
    key_share_threshold,
    open_round_key_share,
    recover_round_key,
)
from fedrisk.strategies.secagg.keys import NodeKeys
from fedrisk.strategies.secagg.masking import pair_seed, reveal
from fedrisk.strategies.secagg.registry import KeyRegistry
from fedrisk.strategies.secagg.round_info import RoundInfo, header
from fedrisk.strategies.secagg.strategy import RunKeys
from fedrisk.strategies.secagg.unmasking import RoundUnmasker, UnmaskOutcome
from fedrisk.strategies.secagg.wire import ProtocolAbort, Rule, Stage

BANKS = ("bank_a", "bank_b", "bank_c", "bank_d")
FIVE_BANKS = (*BANKS, "bank_e")
# Deliberately not in the order of the names: the sign of a pairwise mask follows node ids.
# bank_z is not in any manifest.
NODE_IDS = {
    "bank_a": 7301,
    "bank_b": 42,
    "bank_c": 99120,
    "bank_d": 5,
    "bank_e": 630,
    "bank_z": 31337,
}
RUN_ROUNDS = 5  # rounds of the run: each advertisement covers its round keys
SHAPES: list[tuple[int, ...]] = [(3, 4), (4,)]
N_PARAMETERS = sum(int(np.prod(shape)) for shape in SHAPES)
SECAGG = SecAggConfig(mode="secaggplus", max_rows=1000)
CHECKED = SecAggConfig(mode="secaggplus", max_rows=1000, consistency_check=True)
SEALED_MASTER_SIZE = 32 + 1 + 12 + 16  # master secret, AEAD version byte, nonce, tag
KEY_STATE_FIELDS = {wire.RUN_TAG_KEY, wire.ADVERT_KEY, "sealed"}


@pytest.fixture(autouse=True)
def _server_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flower stamps instructions with the sending task's identity; play the ServerApp."""
    monkeypatch.setattr(TaskIdentity, "_run_id", 1)
    monkeypatch.setattr(TaskIdentity, "_node_id", 1)
    monkeypatch.setattr(TaskIdentity, "_task_id", 1)


@dataclass(frozen=True)
class Update:
    """One bank's plaintext contribution to a round."""

    delta: list[np.ndarray]
    weight: int
    loss: float


class InProcessGrid:
    """Delivers the coordinator's key-share requests to the banks' ``key_shares``."""

    def __init__(self, consortium: Consortium) -> None:
        self.consortium = consortium

    def send_and_receive(self, sent: Iterable[Message], *, timeout: float) -> list[Message]:
        c = self.consortium
        replies = []
        for msg in sent:
            assert msg.metadata.message_type == wire.KEYS_MESSAGE_TYPE
            name = next(n for n, node in NODE_IDS.items() if node == msg.metadata.dst_node_id)
            try:
                content = secagg_node.key_shares(msg, c.contexts[name], institution=name)
            except ProtocolAbort as err:
                content = RecordDict({wire.ABORT: secagg_node.abort_record(err)})
            replies.append(Message(content=content, reply_to=msg))
        return replies


@dataclass
class Consortium:
    """Banks with real keys and contexts, plus the coordinator's key registry."""

    banks: tuple[str, ...]
    state_dir: Path
    manifest_path: Path
    manifest: ConsortiumManifest
    keys: RunKeys
    secagg: SecAggConfig
    encoding: Encoding
    registry: KeyRegistry
    contexts: dict[str, Context] = field(default_factory=dict)

    def run_config(self) -> dict[str, str]:
        return {
            messages.INSTITUTIONS: json.dumps(list(self.banks)),
            messages.MANIFEST: str(self.manifest_path),
            messages.STATE_DIR: str(self.state_dir),
        }

    def new_context(self, name: str) -> Context:
        """A fresh Context for ``name``: what a (re)started ClientApp starts from."""
        context = Context(
            run_id=1,
            node_id=NODE_IDS[name],
            node_config={},
            state=RecordDict(),
            run_config=self.run_config(),
        )
        self.contexts[name] = context
        return context

    @property
    def adverts(self) -> dict[str, bytes]:
        return {name: advert.to_bytes() for name, advert in self.registry.adverts.items()}

    def round_info(self, server_round: int, participants: Iterable[str] | None = None) -> RoundInfo:
        names = self.banks if participants is None else tuple(participants)
        return RoundInfo(
            run_tag=self.keys.run_tag,
            salt=self.keys.salt,
            round=server_round,
            node_of={name: NODE_IDS[name] for name in names},
            degree=self.secagg.degree,
            threshold_setting=self.secagg.threshold,
        )

    def unmasker(self, info: RoundInfo) -> RoundUnmasker:
        """The round's unmasker, built as ``SecureAggregation.configure_train`` builds it."""
        registry = self.registry
        return RoundUnmasker(
            info,
            length=self.encoding.vector_length(N_PARAMETERS),
            dtype=self.encoding.dtype,
            adverts={node: registry.adverts[name] for name, node in info.node_of.items()},
            key_shares=lambda owner, holder: registry.share(owner, holder, info.round),
            institutions=registry.institutions,
        )

    def train_message(
        self, name: str, info: RoundInfo, *, relay: Mapping[str, bytes] | None = None
    ) -> Message:
        """The training instruction for ``name``: the round, plus adverts it has not seen.

        ``relay`` replaces what an honest coordinator would relay (a misbehaving one).
        """
        node = NODE_IDS[name]
        offered = (
            self.registry.offer(node, info.node_of) if relay is None else ConfigRecord(dict(relay))
        )
        content = RecordDict({wire.ROUND: info.to_record(), wire.PEER_ADVERTS: offered})
        return Message(content=content, dst_node_id=node, message_type=MessageType.TRAIN)

    def prepare(
        self,
        name: str,
        info: RoundInfo,
        *,
        relay: Mapping[str, bytes] | None = None,
    ) -> secagg_node.PreparedRound:
        return secagg_node.prepare_round(
            self.train_message(name, info, relay=relay),
            self.contexts[name],
            secagg=self.secagg,
            institution=name,
            server_round=info.round,
            rounds=RUN_ROUNDS,
        )

    def mask(self, name: str, prepared: secagg_node.PreparedRound, update: Update) -> RecordDict:
        records = secagg_node.masked_records(
            prepared,
            self.contexts[name],
            delta=update.delta,
            weight=update.weight,
            loss=update.loss,
            encoding=self.encoding,
            institution=name,
            rng=np.random.default_rng([prepared.info.round, NODE_IDS[name]]),
        )
        return RecordDict(records)  # type: ignore[arg-type]

    def unmask(self, name: str, request: ConfigRecord) -> ConfigRecord:
        msg = Message(
            content=RecordDict({wire.UNMASK: request}),
            dst_node_id=NODE_IDS[name],
            message_type=wire.UNMASK_MESSAGE_TYPE,
        )
        reply = secagg_node.unmask(msg, self.contexts[name], secagg=self.secagg, institution=name)
        return reply.config_records[wire.REVEAL]

    def sign(self, name: str, request: ConfigRecord) -> dict[str, bytes]:
        msg = Message(
            content=RecordDict({wire.CONSISTENCY: request}),
            dst_node_id=NODE_IDS[name],
            message_type=wire.CONSISTENCY_MESSAGE_TYPE,
        )
        reply = secagg_node.consistency(
            msg, self.contexts[name], secagg=self.secagg, institution=name
        )
        return dict(reply.config_records[wire.CONSISTENCY].items())  # type: ignore[arg-type]


@dataclass
class MaskedRound:
    """A round after the training stage: the server's unmasker and what was masked."""

    info: RoundInfo
    unmasker: RoundUnmasker
    updates: dict[str, Update]


def _consortium(
    tmp_path: Path, banks: Sequence[str] = BANKS, secagg: SecAggConfig = SECAGG
) -> Consortium:
    """Provision keys and manifest (as ``simulations.provision``), contexts, roll call."""
    state_dir = tmp_path / "institutions"
    records = []
    for name in banks:
        folder = state_dir / name
        folder.mkdir(parents=True)
        save_private_key(generate_signing_key(), folder / SIGNING_KEY_FILE)
        public = public_key_text(load_private_key(folder / SIGNING_KEY_FILE).public_key())
        records.append(
            InstitutionRecord(name=name, public_key=public, budget_epsilon=8.0, budget_delta=1e-5)
        )
    manifest = ConsortiumManifest(name="test-consortium", institutions=tuple(records))
    manifest_path = tmp_path / "consortium.json"
    manifest.save(manifest_path)
    trusted = ConsortiumManifest.load(manifest_path)
    keys = RunKeys.fresh({name: trusted.public_key(name) for name in banks})
    consortium = Consortium(
        banks=tuple(banks),
        state_dir=state_dir,
        manifest_path=manifest_path,
        manifest=trusted,
        keys=keys,
        secagg=secagg,
        encoding=Encoding.for_run(secagg, institutions=len(banks), uniform_weights=False),
        registry=KeyRegistry(run_tag=keys.run_tag, salt=keys.salt, signers=keys.signers),
    )
    for name in banks:
        context = consortium.new_context(name)
        advert = secagg_node.advertisement(
            context, name, consortium.keys.setup_record(), rounds=RUN_ROUNDS
        )
        consortium.registry.register(name, NODE_IDS[name], advert)
    return consortium


def _update(name: str, server_round: int) -> Update:
    rng = np.random.default_rng([server_round, NODE_IDS[name], 2025])
    return Update(
        delta=[rng.normal(scale=0.5, size=shape) for shape in SHAPES],
        weight=int(rng.integers(50, 1000)),
        loss=float(rng.uniform(0.2, 0.8)),
    )


def _collect_key_shares(c: Consortium, server_round: int, names: Iterable[str]) -> None:
    failed = c.registry.collect_shares(
        InProcessGrid(c), list(names), round=server_round, timeout=1.0
    )
    assert failed == {}


def _train(
    c: Consortium,
    server_round: int,
    *,
    participants: Sequence[str] | None = None,
    masking: Sequence[str] | None = None,
) -> MaskedRound:
    """Send the training instruction to ``participants``; ``masking`` of them reply."""
    info = c.round_info(server_round, participants)
    _collect_key_shares(c, server_round, info.node_of)
    unmasker = c.unmasker(info)
    masking = list(info.node_of) if masking is None else list(masking)
    updates = {}
    for name in info.node_of:
        prepared = c.prepare(name, info)
        if name not in masking:
            continue  # dropped before masking
        updates[name] = _update(name, server_round)
        unmasker.accept(NODE_IDS[name], c.mask(name, prepared, updates[name]))
        c.registry.delivered(NODE_IDS[name])
    return MaskedRound(info=info, unmasker=unmasker, updates=updates)


def _unmask(
    c: Consortium,
    masked: MaskedRound,
    *,
    revealing: Sequence[str] | None = None,
    signatures: Mapping[str, bytes] | None = None,
) -> tuple[UnmaskOutcome, dict[str, ConfigRecord]]:
    info = masked.info
    reveals = {}
    by_name = {}
    requests = masked.unmasker.requests()
    if signatures is None and c.secagg.consistency_check:
        signatures = _sign_all(c, masked)
    for node, request in requests.items():
        name = info.institution_of[node]
        if revealing is not None and name not in revealing:
            continue  # silent at unmask
        request.update(signatures or {})
        reveals[node] = by_name[name] = c.unmask(name, request)
    return masked.unmasker.finish(reveals), by_name


def _assert_exact_mean(c: Consortium, masked: MaskedRound, outcome: UnmaskOutcome) -> None:
    """The decoded sum is the survivors' weighted mean, within the encoding's bound."""
    assert outcome.total is not None, outcome.reason
    updates = masked.updates
    decoded = decode_sum(outcome.total, shapes=SHAPES, encoding=c.encoding, count=len(updates))
    total_weight = sum(u.weight for u in updates.values())
    bound = c.encoding.error_bound(count=len(updates), weight_total=total_weight)
    assert decoded.weight_total == total_weight
    assert decoded.clipped == 0
    for i, got in enumerate(decoded.mean_delta):
        expected = sum(u.weight * u.delta[i] for u in updates.values()) / total_weight
        assert got.shape == SHAPES[i]
        assert np.max(np.abs(got - expected)) <= bound
    expected_loss = sum(u.weight * u.loss for u in updates.values()) / total_weight
    assert abs(decoded.mean_loss - expected_loss) <= bound
    assert 0 < bound < 1e-3  # the comparison above is meaningful


def _forged_advert(c: Consortium, name: str, *, signed_by: str) -> bytes:
    """A well-formed advertisement for ``name`` over fresh keys, signed by ``signed_by``."""
    key = load_private_key(c.state_dir / signed_by / SIGNING_KEY_FILE)
    return advertise(
        key,
        NodeKeys.generate(c.keys.run_tag),
        institution=name,
        node_id=NODE_IDS[name],
        rounds=range(1, RUN_ROUNDS + 1),
    ).to_bytes()


def _consistency_request(
    info: RoundInfo, survivors: Sequence[int], dropped: Sequence[int]
) -> ConfigRecord:
    record = header(run_tag=info.run_tag, round=info.round)
    record[wire.SURVIVORS_KEY] = sorted(survivors)
    record[wire.DROPPED_KEY] = sorted(dropped)
    return record


def _sign_all(c: Consortium, masked: MaskedRound) -> dict[str, bytes]:
    """The consistency round: every survivor signs the survivor set (some may then still
    go silent at unmask)."""
    unmasker = masked.unmasker
    asked = _consistency_request(masked.info, unmasker.survivors, unmasker.dropped)
    signatures: dict[str, bytes] = {}
    for node in unmasker.survivors:
        signatures.update(c.sign(masked.info.institution_of[node], asked))
    return signatures


def _state_bytes(context: Context) -> list[bytes]:
    found: list[bytes] = []
    for record in context.state.config_records.values():
        for value in record.values():
            items = value if isinstance(value, list) else [value]
            found.extend(item for item in items if isinstance(item, bytes))
    return found


def _private_bytes(keys: NodeKeys) -> list[bytes]:
    """The master secret and every private key derived from it for the run."""
    derived = [keys.identity()] + [keys.round_key(r) for r in range(1, RUN_ROUNDS + 1)]
    return [keys.master] + [key.private_bytes_raw() for key in derived]


# -- happy path -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("banks", "degree"),
    [(BANKS, 0), (FIVE_BANKS, 2)],
    ids=["4-banks-complete-graph", "5-banks-degree-2"],
)
def test_two_rounds_unmask_to_the_weighted_mean_and_keep_the_run_key_sealed(
    tmp_path: Path, banks: tuple[str, ...], degree: int
) -> None:
    c = _consortium(tmp_path, banks, replace(SECAGG, degree=degree))

    for server_round in (1, 2):
        info = c.round_info(server_round)
        _collect_key_shares(c, server_round, banks)
        unmasker = c.unmasker(info)
        updates = {}
        for name in banks:
            context = c.contexts[name]
            prepared = c.prepare(name, info)
            own = c.registry.adverts[name]
            assert public_bytes(prepared.keys.identity()) == own.identity_key
            assert public_bytes(prepared.keys.round_key(server_round)) == (
                own.round_key(server_round)
            )
            assert prepared.me == NODE_IDS[name]
            assert set(prepared.peers) == set(info.node_of.values()) - {NODE_IDS[name]}
            updates[name] = _update(name, server_round)
            reply = c.mask(name, prepared, updates[name])
            unmasker.accept(NODE_IDS[name], reply)
            c.registry.delivered(NODE_IDS[name])
            # No private key material sits in the clear in Context.state.
            stored = _state_bytes(context)
            assert not any(
                secret in blob for secret in _private_bytes(prepared.keys) for blob in stored
            )
            assert not context.state.array_records
            assert set(context.state.config_records[KEY_STATE]) == KEY_STATE_FIELDS
        masked = MaskedRound(info=info, unmasker=unmasker, updates=updates)
        outcome, _ = _unmask(c, masked)

        _assert_exact_mean(c, masked, outcome)
        assert outcome.silent == []
        for name in banks:
            state = c.contexts[name].state.config_records[ROUND_STATE]
            assert state["round"] == server_round and state["revealed"] is True

    sealed = [c.contexts[n].state.config_records[KEY_STATE]["sealed"] for n in banks]
    assert all(isinstance(s, bytes) and len(s) == SEALED_MASTER_SIZE for s in sealed)
    assert len(set(sealed)) == len(banks)
    for name in banks:
        wrap = c.state_dir / name / WRAP_KEY_FILE
        assert wrap.is_file() and len(wrap.read_bytes()) == 32
        assert stat.S_IMODE(wrap.stat().st_mode) == 0o600


def test_roll_call_returns_the_same_advertisement_for_the_same_run(tmp_path: Path) -> None:
    c = _consortium(tmp_path)
    context = c.contexts["bank_a"]
    held = dict(context.state.config_records[KEY_STATE].items())

    again = secagg_node.advertisement(context, "bank_a", c.keys.setup_record(), rounds=RUN_ROUNDS)

    assert again == c.adverts["bank_a"]
    assert dict(context.state.config_records[KEY_STATE].items()) == held


# -- substituted, unknown and rolled-back advertisements ----------------------------------


@pytest.mark.parametrize(
    "forgery", ["signed-by-another-bank", "identity-key-replaced", "round-key-replaced"]
)
def test_substituted_advertisement_aborts_naming_the_peer_before_masking(
    tmp_path: Path, forgery: str
) -> None:
    c = _consortium(tmp_path)
    genuine = c.registry.adverts["bank_b"]
    fresh = public_bytes(generate_agreement_key())
    if forgery == "signed-by-another-bank":
        forged = _forged_advert(c, "bank_b", signed_by="bank_c")
    elif forgery == "identity-key-replaced":
        forged = replace(genuine, identity_key=fresh).to_bytes()  # keeps bank_b's signature
    else:
        forged = replace(genuine, round_keys=(fresh, *genuine.round_keys[1:])).to_bytes()
    relay = {**c.adverts, "bank_b": forged}
    context = c.contexts["bank_a"]

    with pytest.raises(ProtocolAbort) as caught:
        c.prepare("bank_a", c.round_info(1), relay=relay)

    assert caught.value.peer == "bank_b"
    assert caught.value.stage is Stage.advertise
    assert "signature" in caught.value.reason
    assert ROUND_STATE not in context.state.config_records  # nothing masked
    cache = context.state.config_records.get(PEERS_STATE, ConfigRecord())
    assert forged not in cache.values()


def test_advertisement_of_an_institution_outside_the_manifest_aborts_naming_it(
    tmp_path: Path,
) -> None:
    c = _consortium(tmp_path)
    advert = advertise(
        generate_signing_key(),
        NodeKeys.generate(c.keys.run_tag),
        institution="bank_z",
        node_id=NODE_IDS["bank_z"],
        rounds=range(1, RUN_ROUNDS + 1),
    ).to_bytes()
    # Relayed alongside an ordinary round, and as a participant the coordinator enrolled.
    for participants in (BANKS, (*BANKS, "bank_z")):
        info = c.round_info(1, participants)
        with pytest.raises(ProtocolAbort) as caught:
            c.prepare("bank_a", info, relay={**c.adverts, "bank_z": advert})
        assert caught.value.peer == "bank_z"
        assert "manifest" in caught.value.reason
    # Enrolled without any advertisement: no verified key for it.
    with pytest.raises(ProtocolAbort) as caught:
        c.prepare("bank_b", c.round_info(1, (*BANKS, "bank_z")), relay=c.adverts)
    assert caught.value.peer == "bank_z"
    assert ROUND_STATE not in c.contexts["bank_a"].state.config_records


def test_relaying_an_older_advertisement_than_one_seen_aborts(tmp_path: Path) -> None:
    c = _consortium(tmp_path)
    first = _train(c, 1)
    _assert_exact_mean(c, first, _unmask(c, first)[0])
    old = c.adverts["bank_b"]
    # bank_b restarts and re-advertises newer keys for the same run.
    c.new_context("bank_b")
    with pytest.raises(secagg_node.Readvertised) as readvertised:
        c.prepare("bank_b", c.round_info(2))
    newer = readvertised.value.advert
    c.registry.register("bank_b", NODE_IDS["bank_b"], newer)
    assert parse_advertisement(newer, peer="bank_b").issued_ns > (
        parse_advertisement(old, peer="bank_b").issued_ns
    )
    c.prepare("bank_a", c.round_info(3), relay={"bank_b": newer})  # accepted

    with pytest.raises(ProtocolAbort) as caught:
        c.prepare("bank_a", c.round_info(3), relay={"bank_b": old})

    assert caught.value.peer == "bank_b"
    assert "older" in caught.value.reason
    cache = c.contexts["bank_a"].state.config_records[PEERS_STATE]
    assert cache["ad:bank_b"] == newer


def test_coordinator_relaying_another_key_for_the_node_itself_aborts(tmp_path: Path) -> None:
    c = _consortium(tmp_path)
    # Validly signed by bank_a's own manifest key, but not the advertisement it issued.
    substitute = _forged_advert(c, "bank_a", signed_by="bank_a")

    with pytest.raises(ProtocolAbort) as caught:
        c.prepare("bank_a", c.round_info(1), relay={**c.adverts, "bank_a": substitute})

    assert caught.value.peer == "bank_a"
    assert caught.value.stage is Stage.advertise
    assert "did not issue" in caught.value.reason
    assert ROUND_STATE not in c.contexts["bank_a"].state.config_records


def _key_share_request(c: Consortium, adverts: Mapping[str, bytes]) -> Message:
    request = header(run_tag=c.keys.run_tag, round=1)
    request[wire.SALT_KEY] = c.keys.salt
    return Message(
        content=RecordDict({wire.KEYS: request, wire.ADVERTS: ConfigRecord(dict(adverts))}),
        dst_node_id=NODE_IDS["bank_a"],
        message_type=wire.KEYS_MESSAGE_TYPE,
    )


def test_key_shares_are_sealed_to_every_peer_only_after_verifying_the_bundle(
    tmp_path: Path,
) -> None:
    c = _consortium(tmp_path)
    context = c.contexts["bank_a"]
    forged = _forged_advert(c, "bank_b", signed_by="bank_c")

    with pytest.raises(ProtocolAbort) as caught:
        secagg_node.key_shares(
            _key_share_request(c, {**c.adverts, "bank_b": forged}), context, institution="bank_a"
        )
    assert caught.value.peer == "bank_b"

    reply = secagg_node.key_shares(_key_share_request(c, c.adverts), context, institution="bank_a")
    record = reply.config_records[wire.KEYS]
    expected = {
        f"{wire.KEY_SHARE_PREFIX}{holder}:{r}"
        for holder in ("bank_b", "bank_c", "bank_d")
        for r in range(1, RUN_ROUNDS + 1)
    }
    assert {k for k in record if k.startswith(wire.KEY_SHARE_PREFIX)} == expected
    master = c.contexts["bank_a"].state.config_records[KEY_STATE]["sealed"]
    assert all(isinstance(record[k], bytes) and record[k] != master for k in expected)


# -- replays ----------------------------------------------------------------------------


def test_replayed_training_instruction_and_second_unmask_are_refused(tmp_path: Path) -> None:
    c = _consortium(tmp_path)
    masked = _train(c, 1)
    requests = masked.unmasker.requests()
    signatures = _sign_all(c, masked)
    for r in requests.values():
        r.update(signatures)
    request = requests[NODE_IDS["bank_a"]]

    # An unmask request for another round is refused and does not use up the reveal.
    for other in (0, 2):
        wrong = ConfigRecord(dict(request.items()))
        wrong[wire.ROUND_KEY] = other
        with pytest.raises(ProtocolAbort) as caught:
            c.unmask("bank_a", wrong)
        assert caught.value.stage is Stage.unmask
        assert "round" in caught.value.reason
    assert c.contexts["bank_a"].state.config_records[ROUND_STATE]["revealed"] is False

    reveals = {node: c.unmask(masked.info.institution_of[node], r) for node, r in requests.items()}
    _assert_exact_mean(c, masked, masked.unmasker.finish(reveals))

    with pytest.raises(ProtocolAbort, match="already revealed"):
        c.unmask("bank_a", request)
    # Replaying round 1's instruction cannot make a node mask again.
    with pytest.raises(ProtocolAbort, match="replayed") as caught:
        c.prepare("bank_a", c.round_info(1), relay={})
    assert caught.value.stage is Stage.train
    # The next round is still fine.
    second = _train(c, 2)
    _assert_exact_mean(c, second, _unmask(c, second)[0])


# -- restarts ---------------------------------------------------------------------------


def _restart_round(c: Consortium, server_round: int, restarted: str) -> tuple[MaskedRound, bytes]:
    """A round in which ``restarted`` answers with a re-advertisement instead of an update."""
    info = c.round_info(server_round)
    _collect_key_shares(c, server_round, info.node_of)
    masked = MaskedRound(info=info, unmasker=c.unmasker(info), updates={})
    readvertised = None
    for name in info.node_of:
        try:
            prepared = c.prepare(name, info)
        except secagg_node.Readvertised as err:
            assert name == restarted
            readvertised = err.advert
            continue
        masked.updates[name] = _update(name, server_round)
        masked.unmasker.accept(NODE_IDS[name], c.mask(name, prepared, masked.updates[name]))
        c.registry.delivered(NODE_IDS[name])
    assert readvertised is not None
    return masked, readvertised


def test_restarted_bank_readvertises_and_rejoins_the_next_round(tmp_path: Path) -> None:
    c = _consortium(tmp_path)
    first = _train(c, 1)
    _assert_exact_mean(c, first, _unmask(c, first)[0])
    old = c.registry.adverts["bank_c"]

    restarted = c.new_context("bank_c")  # same state folder, empty Context.state
    masked, advert = _restart_round(c, 2, "bank_c")

    new = verify_advertisement(
        advert,
        peer="bank_c",
        signer=c.manifest.public_key("bank_c"),
        run_tag=c.keys.run_tag,
        node_id=NODE_IDS["bank_c"],
    )
    assert new.identity_key != old.identity_key
    assert new.first_round == 3 and new.round_key(3) != old.round_key(3)
    assert new.issued_ns > old.issued_ns
    assert restarted.state.config_records[KEY_STATE][wire.ADVERT_KEY] == advert
    # As server/rounds.py does, the re-advertisement is registered as soon as the train
    # replies arrive, before aggregate_train unmasks the round (regression: registering
    # used to discard the shares of bank_c's old round-2 key, and round 2 failed closed).
    c.registry.register("bank_c", NODE_IDS["bank_c"], advert)
    # Round 2 unmasks without bank_c: the others reveal their shares of its round-2 key.
    outcome, reveals = _unmask(c, masked)
    _assert_exact_mean(c, masked, outcome)
    assert all(wire.REVEALED_KEY_PREFIX + "bank_c" in r for r in reveals.values())

    third = _train(c, 3)  # asks bank_c for shares of its new keys, relays its new advert

    assert set(third.updates) == set(BANKS)
    _assert_exact_mean(c, third, _unmask(c, third)[0])
    for name in ("bank_a", "bank_b", "bank_d"):
        cache = c.contexts[name].state.config_records[PEERS_STATE]
        assert cache["ad:bank_c"] == advert


def test_restarted_bank_refuses_its_stale_advertisement(tmp_path: Path) -> None:
    c = _consortium(tmp_path)
    stale = c.adverts["bank_c"]
    c.new_context("bank_c")
    with pytest.raises(secagg_node.Readvertised) as readvertised:
        c.prepare("bank_c", c.round_info(1))
    c.registry.register("bank_c", NODE_IDS["bank_c"], readvertised.value.advert)

    with pytest.raises(ProtocolAbort) as caught:
        c.prepare("bank_c", c.round_info(2), relay={**c.adverts, "bank_c": stale})

    assert caught.value.peer == "bank_c"
    assert "did not issue" in caught.value.reason


# -- dropouts ---------------------------------------------------------------------------


def test_bank_dropped_before_masking_survivors_reveal_its_round_key_shares(
    tmp_path: Path,
) -> None:
    c = _consortium(tmp_path)
    survivors = ("bank_a", "bank_b", "bank_c")
    masked = _train(c, 1, masking=survivors)

    outcome, reveals = _unmask(c, masked)

    assert masked.unmasker.dropped == [NODE_IDS["bank_d"]]
    _assert_exact_mean(c, masked, outcome)
    for record in reveals.values():
        assert wire.REVEALED_KEY_PREFIX + "bank_d" in record
        assert wire.REVEALED_SHARE_PREFIX + "bank_d" not in record
        assert {k for k in record if k.startswith(wire.REVEALED_SHARE_PREFIX)} == {
            wire.REVEALED_SHARE_PREFIX + name for name in survivors
        }
        assert not any(
            k.startswith(wire.REVEALED_KEY_PREFIX + p) for p in survivors for k in record
        )


def test_one_bank_silent_at_unmask_still_unmasks(tmp_path: Path) -> None:
    c = _consortium(tmp_path)
    masked = _train(c, 1)

    outcome, _ = _unmask(c, masked, revealing=("bank_a", "bank_c", "bank_d"))

    assert outcome.silent == ["bank_b"]
    _assert_exact_mean(c, masked, outcome)


def test_too_many_silent_at_unmask_fails_closed(tmp_path: Path) -> None:
    c = _consortium(tmp_path)
    masked = _train(c, 1)

    outcome, _ = _unmask(c, masked, revealing=("bank_a", "bank_c"))

    assert outcome.total is None
    assert sorted(outcome.silent) == ["bank_b", "bank_d"]
    assert "shares" in outcome.reason


# -- consistency round ------------------------------------------------------------------


def test_consistency_round_signed_survivor_set_unmasks(tmp_path: Path) -> None:
    c = _consortium(tmp_path, secagg=CHECKED)
    survivors = ("bank_a", "bank_b", "bank_c")
    masked = _train(c, 1, masking=survivors)
    unmasker = masked.unmasker
    request = _consistency_request(masked.info, unmasker.survivors, unmasker.dropped)
    signatures: dict[str, bytes] = {}
    for name in survivors:
        signatures.update(c.sign(name, request))

    assert set(signatures) == {wire.SIGNATURE_PREFIX + n for n in survivors}
    outcome, _ = _unmask(c, masked, signatures=signatures)
    _assert_exact_mean(c, masked, outcome)


def test_unmask_refuses_a_signature_over_another_survivor_set(tmp_path: Path) -> None:
    c = _consortium(tmp_path, secagg=CHECKED)
    masked = _train(c, 1)
    info, unmasker = masked.info, masked.unmasker
    honest = _consistency_request(info, unmasker.survivors, [])
    # The coordinator shows bank_d a set in which bank_c dropped.
    lie = _consistency_request(
        info, [NODE_IDS[n] for n in ("bank_a", "bank_b", "bank_d")], [NODE_IDS["bank_c"]]
    )
    signatures: dict[str, bytes] = {}
    for name in ("bank_a", "bank_b", "bank_c"):
        signatures.update(c.sign(name, honest))
    signatures.update(c.sign("bank_d", lie))
    requests = unmasker.requests()

    def request_for(name: str, extra: Mapping[str, bytes]) -> ConfigRecord:
        return ConfigRecord({**dict(requests[NODE_IDS[name]].items()), **extra})

    with pytest.raises(ProtocolAbort) as caught:
        c.unmask("bank_a", request_for("bank_a", signatures))
    assert caught.value.peer == "bank_d"
    assert caught.value.stage is Stage.consistency

    only_one = {k: v for k, v in signatures.items() if k == wire.SIGNATURE_PREFIX + "bank_a"}
    with pytest.raises(ProtocolAbort, match="only 1 survivors signed") as caught:
        c.unmask("bank_a", request_for("bank_a", only_one))
    assert caught.value.stage is Stage.consistency

    # bank_d signed another set: it refuses to reveal for the honest one.
    honest_signatures = {k: v for k, v in signatures.items() if not k.endswith("bank_d")}
    with pytest.raises(ProtocolAbort, match="differs from the one this node signed"):
        c.unmask("bank_d", request_for("bank_d", honest_signatures))

    # None of the refusals used up a reveal: the three honest banks still unmask.
    reveals = {
        NODE_IDS[name]: c.unmask(name, request_for(name, honest_signatures))
        for name in ("bank_a", "bank_b", "bank_c")
    }
    outcome = unmasker.finish(reveals)
    assert outcome.silent == ["bank_d"]
    _assert_exact_mean(c, masked, outcome)


def test_bank_refuses_to_sign_a_second_different_survivor_set(tmp_path: Path) -> None:
    c = _consortium(tmp_path, secagg=CHECKED)
    masked = _train(c, 1)
    info = masked.info
    everyone = [NODE_IDS[n] for n in BANKS]
    first = _consistency_request(info, everyone, [])
    second = _consistency_request(
        info, [n for n in everyone if n != NODE_IDS["bank_b"]], [NODE_IDS["bank_b"]]
    )

    signed = c.sign("bank_a", first)
    assert c.sign("bank_a", first) == signed  # Ed25519 is deterministic; same set, same answer

    with pytest.raises(ProtocolAbort, match="second, different survivor set") as caught:
        c.sign("bank_a", second)
    assert caught.value.stage is Stage.consistency


def test_bank_refuses_to_sign_a_survivor_set_that_leaves_it_out(tmp_path: Path) -> None:
    c = _consortium(tmp_path, secagg=CHECKED)
    masked = _train(c, 1)
    everyone = [NODE_IDS[n] for n in BANKS]
    without_a = _consistency_request(
        masked.info, [n for n in everyone if n != NODE_IDS["bank_a"]], [NODE_IDS["bank_a"]]
    )

    with pytest.raises(ProtocolAbort, match="leaves out this node") as caught:
        c.sign("bank_a", without_a)

    assert caught.value.stage is Stage.consistency


def test_unmask_without_signing_is_refused_under_consistency_check(tmp_path: Path) -> None:
    c = _consortium(tmp_path, secagg=CHECKED)
    masked = _train(c, 1)

    with pytest.raises(ProtocolAbort) as caught:
        _unmask(c, masked, signatures={})

    assert caught.value.stage is Stage.consistency


# -- reply records ----------------------------------------------------------------------


def test_abort_and_readvertise_records_carry_stage_reason_and_advert(tmp_path: Path) -> None:
    c = _consortium(tmp_path)
    relay = {**c.adverts, "bank_b": _forged_advert(c, "bank_b", signed_by="bank_c")}
    with pytest.raises(ProtocolAbort) as caught:
        c.prepare("bank_a", c.round_info(1), relay=relay)

    record = secagg_node.abort_record(caught.value)

    assert record[wire.STAGE_KEY] == "advertise"
    assert record[wire.REASON_KEY] == caught.value.reason
    assert record[wire.PEER_KEY] == "bank_b"
    anonymous = secagg_node.abort_record(ProtocolAbort(Stage.unmask, "already revealed"))
    assert anonymous[wire.PEER_KEY] == ""

    c.new_context("bank_d")
    with pytest.raises(secagg_node.Readvertised) as readvertised:
        c.prepare("bank_d", c.round_info(1))
    records = secagg_node.readvertise_record(readvertised.value)

    assert set(records) == {wire.ADVERT, wire.ABORT}
    assert records[wire.ADVERT][wire.ADVERT_KEY] == readvertised.value.advert
    assert records[wire.ABORT][wire.STAGE_KEY] == Stage.advertise.value
    assert "restarted" in str(records[wire.ABORT][wire.REASON_KEY])
    # The re-advertisement verifies against the manifest.
    c.registry.register("bank_d", NODE_IDS["bank_d"], readvertised.value.advert)


# -- attacks by an active coordinator ---------------------------------------------------
#
# Each test plays the coordinator (and, where said, a colluding bank) as an attacker
# would: it holds the masked replies, the sealed key shares and the colluder's state
# folder, sends the honest banks' real node handlers whatever requests it likes, and
# then tries to unmask one bank's update from what came back.

TRIO = ("bank_a", "bank_b", "bank_c")
LIMIT = SecAggConfig(mode="secaggplus", max_rows=1000, threshold=2, consistency_check=True)


@dataclass
class Attack:
    """A round after every bank masked: what the coordinator received, and the truth."""

    c: Consortium
    info: RoundInfo
    replies: dict[str, RecordDict]
    updates: dict[str, Update]

    def request(
        self, name: str, survivors: Sequence[str], signatures: Mapping[str, bytes] = {}
    ) -> ConfigRecord:
        """An unmask request for ``name`` claiming ``survivors`` (the rest dropped)."""
        info = self.info
        alive = sorted(NODE_IDS[n] for n in survivors)
        record = _consistency_request(info, alive, sorted(set(info.institution_of) - set(alive)))
        for sender in survivors:
            shares = self.replies[sender].config_records[wire.SHARES]
            blob = shares.get(wire.SHARE_PREFIX + name)
            if sender != name and isinstance(blob, bytes):
                record[wire.SHARE_PREFIX + sender] = blob
        for owner in set(info.node_of) - set(survivors) - {name}:
            blob = self.c.registry.share(owner, name, info.round)
            if blob is not None:
                record[wire.KEY_SHARE_PREFIX + owner] = blob
        record.update(signatures)
        return record

    def ask_to_sign(self, name: str, survivors: Sequence[str]) -> dict[str, bytes]:
        """Ask honest ``name`` to sign ``survivors``; empty if it refuses."""
        try:
            return self.c.sign(name, self.request(name, survivors))
        except ProtocolAbort:
            return {}

    def colluder_signs(self, name: str, survivors: Sequence[str]) -> dict[str, bytes]:
        """A colluding bank signs any set it is asked to, with its own key."""
        alive = sorted(NODE_IDS[n] for n in survivors)
        key = load_private_key(self.c.state_dir / name / SIGNING_KEY_FILE)
        message = statement(self.info, survivors=alive)
        return {wire.SIGNATURE_PREFIX + name: sign(key, message, context=wire.CONSISTENCY_CONTEXT)}

    def colluder_opens(self, name: str, target: str) -> dict[str, bytes]:
        """A colluding bank opens every share of ``target``'s secrets it holds."""
        context, info = self.c.contexts[name], self.info
        keys, own = own_keys(context, name)
        self_mask = reveal(
            me=NODE_IDS[name],
            keys=keys,
            peers=peer_adverts(context, info),
            own=own,
            info=info,
            survivors=set(info.institution_of),  # it sent a vector: its share of b_target
            sealed_to_me={
                NODE_IDS[target]: self.replies[target].config_records[wire.SHARES][
                    wire.SHARE_PREFIX + name
                ]
            },
            key_shares_to_me={},
            institutions=self.c.registry.institutions,
            own_share=b"\x00" * 33,  # its own self-mask is not the point
        ).shares[NODE_IDS[target]]
        blob = self.c.registry.share(target, name, info.round)
        assert blob is not None
        key_share = open_round_key_share(
            keys.identity(),
            blob,
            owner=self.c.registry.adverts[target],
            holder=own,
            institutions=self.c.registry.institutions,
            round=info.round,
            salt=info.salt,
        )
        return {
            wire.REVEALED_SHARE_PREFIX + target: self_mask,
            wire.REVEALED_KEY_PREFIX + target: key_share,
        }

    def unmask_one(self, target: str, revealed: Iterable[Mapping[str, object]]) -> np.ndarray:
        """Rebuild ``target``'s self-mask seed and round key, and strip its masks.

        Raises
        ------
        ValueError
            If fewer than a threshold of shares of either secret were revealed.
        """
        info, registry = self.info, self.c.registry
        node = NODE_IDS[target]
        seeds: dict[int, bytes] = {}
        keys: dict[int, bytes] = {}
        for record in revealed:
            for prefix, got in (
                (wire.REVEALED_SHARE_PREFIX, seeds),
                (wire.REVEALED_KEY_PREFIX, keys),
            ):
                value = record.get(prefix + target)
                if isinstance(value, bytes):
                    got[value[0]] = value[1:]
        key_threshold = key_share_threshold(len(holders_of(target, registry.institutions)))
        if len(seeds) < info.threshold or len(keys) < key_threshold:
            raise ValueError(
                f"{len(seeds)} of {info.threshold} self-mask shares and {len(keys)} of "
                f"{key_threshold} round-key shares of {target}"
            )
        vector = self.replies[target].array_records[wire.MASKED][wire.VECTOR_KEY].numpy()
        bits = vector.dtype.itemsize * 8
        seed = combine_seed(sorted(seeds.items()), threshold=info.threshold)
        plain = vector - mask_vector(seed, vector.size, bits=bits)
        round_key = recover_round_key(
            sorted(keys.items()),
            owner=registry.adverts[target],
            institutions=registry.institutions,
            round=info.round,
        )
        for peer in info.graph[node]:
            pad = mask_vector(
                pair_seed(
                    round_key,
                    registry.adverts[info.institution_of[peer]],
                    me=node,
                    peer=peer,
                    info=info,
                ),
                vector.size,
                bits=bits,
            )
            plain = plain - pad if node < peer else plain + pad
        return plain

    def encoded(self, name: str) -> np.ndarray:
        """``name``'s encoded update before masking (what the attacker wants)."""
        update = self.updates[name]
        return encode_update(
            update.delta,
            weight=update.weight,
            loss=update.loss,
            encoding=self.c.encoding,
            rng=np.random.default_rng([self.info.round, NODE_IDS[name]]),
        )


def _attack(tmp_path: Path, banks: Sequence[str], secagg: SecAggConfig) -> Attack:
    c = _consortium(tmp_path, banks, secagg)
    info = c.round_info(1)
    _collect_key_shares(c, 1, info.node_of)
    replies, updates = {}, {}
    for name in banks:
        prepared = c.prepare(name, info)
        updates[name] = _update(name, 1)
        replies[name] = c.mask(name, prepared, updates[name])
    return Attack(c=c, info=info, replies=replies, updates=updates)


def _refused(attack: Attack, name: str, request: ConfigRecord) -> ProtocolAbort:
    """``name`` refuses ``request``: no reveal, the reveal not used up, no share in the reply."""
    with pytest.raises(ProtocolAbort) as caught:
        attack.c.unmask(name, request)
    record = secagg_node.abort_record(caught.value)
    assert set(record) == {wire.STAGE_KEY, wire.REASON_KEY, wire.PEER_KEY, wire.RULE_KEY}
    assert not any(isinstance(v, bytes) for v in record.values())
    assert attack.c.contexts[name].state.config_records[ROUND_STATE]["revealed"] is False
    return caught.value


def _claim_c_dropped(attack: Attack) -> list[Mapping[str, object]]:
    """Coordinator + colluding bank_b: tell bank_a that bank_c dropped, tell bank_c the
    truth, and collect whatever the honest banks reveal plus everything bank_b holds."""
    lie, truth = ("bank_a", "bank_b"), TRIO
    revealed: list[Mapping[str, object]] = [attack.colluder_opens("bank_b", "bank_c")]
    for name, shown in (("bank_a", lie), ("bank_c", truth)):
        signatures = {
            **attack.ask_to_sign(name, shown),
            **attack.colluder_signs("bank_b", shown),
        }
        with contextlib.suppress(ProtocolAbort):  # a refusal reveals nothing
            revealed.append(dict(attack.c.unmask(name, attack.request(name, shown, signatures))))
    return revealed


def test_attack_three_banks_threshold_two_coordinator_and_one_bank_recover_an_update(
    tmp_path: Path,
) -> None:
    # The documented limit of an explicit threshold of 2 (of 3 shares): 2t − s = 1
    # colluding bank suffices, consistency check or not.
    attack = _attack(tmp_path, TRIO, LIMIT)
    assert attack.info.threshold == 2

    revealed = _claim_c_dropped(attack)

    assert len(revealed) == 3  # bank_b's shares, and both honest banks revealed
    recovered = attack.unmask_one("bank_c", revealed)
    np.testing.assert_array_equal(recovered, attack.encoded("bank_c"))
    alone = decode_sum(recovered, shapes=SHAPES, encoding=attack.c.encoding, count=1)
    assert alone.weight_total == attack.updates["bank_c"].weight


def test_attack_three_banks_default_settings_refuse_and_nothing_unmasks(
    tmp_path: Path,
) -> None:
    attack = _attack(tmp_path, TRIO, SECAGG)
    assert (attack.info.threshold, SECAGG.consistency_check) == (3, True)

    # bank_a refuses to sign, and to reveal for, a survivor set of 2 of its 3 holders.
    with pytest.raises(ProtocolAbort) as declined:
        attack.c.sign("bank_a", attack.request("bank_a", ("bank_a", "bank_b")))
    assert declined.value.rule is Rule.survivor_threshold
    lie = attack.request(
        "bank_a", ("bank_a", "bank_b"), attack.colluder_signs("bank_b", ("bank_a", "bank_b"))
    )
    refusal = _refused(attack, "bank_a", lie)
    assert (refusal.stage, refusal.rule) == (Stage.unmask, Rule.survivor_threshold)

    revealed = _claim_c_dropped(attack)

    # bank_c, shown the truth with bank_b's signature and its own, lacks a third.
    assert len(revealed) == 1  # only what the colluder holds
    with pytest.raises(ValueError, match="1 of 3 self-mask shares and 1 of 2 round-key"):
        attack.unmask_one("bank_c", revealed)
    # The coordinator gives up the lie and shows everyone the truth: the banks reveal,
    # and it has bank_c's self-mask but still not its round key (only the sum unmasks).
    signatures = {
        **attack.ask_to_sign("bank_a", TRIO),
        **attack.ask_to_sign("bank_c", TRIO),
        **attack.colluder_signs("bank_b", TRIO),
    }
    honest = [
        dict(attack.c.unmask(n, attack.request(n, TRIO, signatures))) for n in ("bank_a", "bank_c")
    ]
    assert not any(wire.REVEALED_KEY_PREFIX + "bank_c" in r for r in honest)
    with pytest.raises(ValueError, match="3 of 3 self-mask shares and 1 of 2 round-key"):
        attack.unmask_one("bank_c", revealed + honest)


def test_attack_different_survivor_sets_for_different_banks_are_refused(tmp_path: Path) -> None:
    attack = _attack(tmp_path, FIVE_BANKS, SECAGG)
    s1 = FIVE_BANKS  # shown to bank_a, bank_c, bank_e
    s2 = FIVE_BANKS[:4]  # shown to bank_b, bank_d: bank_e "dropped"
    assert (attack.info.threshold, attack.info.signature_quorum) == (4, 4)
    signatures = {
        **{
            k: v
            for n in ("bank_a", "bank_c", "bank_e")
            for k, v in attack.ask_to_sign(n, s1).items()
        },
        **{k: v for n in ("bank_b", "bank_d") for k, v in attack.ask_to_sign(n, s2).items()},
    }
    assert len(signatures) == 5
    over_s1 = {k: v for k, v in signatures.items() if k[-1] in "ace"}
    over_s2 = {k: v for k, v in signatures.items() if k[-1] in "bd"}

    # Every signature it has: the ones over the other set give it away.
    refusal = _refused(attack, "bank_a", attack.request("bank_a", s1, signatures))
    assert (refusal.stage, refusal.rule) == (Stage.consistency, Rule.consistent_set)
    assert refusal.peer in {"bank_b", "bank_d"}
    # Only the ones over its own set: too few.
    refusal = _refused(attack, "bank_a", attack.request("bank_a", s1, over_s1))
    assert (refusal.stage, refusal.rule) == (Stage.consistency, Rule.signature_quorum)
    refusal = _refused(attack, "bank_b", attack.request("bank_b", s2, over_s2))
    assert (refusal.stage, refusal.rule) == (Stage.consistency, Rule.signature_quorum)
    # And bank_b will not sign the other set as well.
    with pytest.raises(ProtocolAbort) as caught:
        attack.c.sign("bank_b", attack.request("bank_b", s1))
    assert caught.value.rule is Rule.consistent_set


@pytest.mark.parametrize("checked", [True, False], ids=["consistency-check", "no-check"])
def test_attack_survivor_set_below_the_threshold_reveals_nothing(
    tmp_path: Path, checked: bool
) -> None:
    attack = _attack(tmp_path, FIVE_BANKS, replace(SECAGG, consistency_check=checked))
    shown = ("bank_a", "bank_b", "bank_c")  # 3 of bank_a's 5 holders; threshold 4
    signatures = {k: v for n in shown for k, v in attack.colluder_signs(n, shown).items()}

    refusal = _refused(attack, "bank_a", attack.request("bank_a", shown, signatures))

    assert (refusal.stage, refusal.rule) == (Stage.unmask, Rule.survivor_threshold)
    assert "at least 4 of this node's 5 share holders" in refusal.reason
    assert refusal.reason.endswith("got 3")


def test_attack_survivor_set_of_one_at_threshold_two_without_the_check_reveals_nothing(
    tmp_path: Path,
) -> None:
    # The reported attack: each bank shown a different set, one of them a set of 1.
    attack = _attack(tmp_path, TRIO, replace(LIMIT, consistency_check=False))

    refusal = _refused(attack, "bank_c", attack.request("bank_c", ("bank_c",)))

    assert (refusal.stage, refusal.rule) == (Stage.unmask, Rule.survivor_threshold)


def test_bank_floor_refuses_a_lower_run_threshold_and_enforces_its_own(tmp_path: Path) -> None:
    attack = _attack(tmp_path, FIVE_BANKS, replace(SECAGG, threshold=3, consistency_check=False))
    c, info = attack.c, attack.c.round_info(2)
    _collect_key_shares(c, 2, info.node_of)

    with pytest.raises(ProtocolAbort) as caught:
        secagg_node.prepare_round(
            c.train_message("bank_a", info),
            c.contexts["bank_a"],
            secagg=c.secagg,
            institution="bank_a",
            server_round=2,
            rounds=RUN_ROUNDS,
            min_threshold_fraction=2 / 3,
        )
    assert (caught.value.stage, caught.value.rule) == (Stage.train, Rule.min_threshold)
    assert "must be at least 4 of the 5" in caught.value.reason
    assert caught.value.reason.endswith("got 3")

    # At unmask (round 1, threshold 3): 3 survivors pass the run's rule, not the floor.
    shown = ("bank_a", "bank_b", "bank_c")
    msg = Message(
        content=RecordDict({wire.UNMASK: attack.request("bank_a", shown)}),
        dst_node_id=NODE_IDS["bank_a"],
        message_type=wire.UNMASK_MESSAGE_TYPE,
    )
    with pytest.raises(ProtocolAbort) as caught:
        secagg_node.unmask(
            msg,
            c.contexts["bank_a"],
            secagg=c.secagg,
            institution="bank_a",
            min_threshold_fraction=2 / 3,
        )
    assert caught.value.rule is Rule.survivor_threshold
    record = attack.c.unmask("bank_a", attack.request("bank_a", shown))  # no floor: reveals
    assert wire.REVEALED_SHARE_PREFIX + "bank_a" in record
