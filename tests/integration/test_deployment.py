"""A real pilot on 127.0.0.1: one SuperLink, three SuperNodes, TLS and node authentication.

Everything is provisioned by `fedrisk consortium init` and `fedrisk data synth` and
started with `fedrisk server`, `fedrisk node` and `fedrisk run`, each a real process
tree (Flower's SuperLink, SuperExec, ServerApp, SuperNodes and ClientApps). One
training run with DP-SGD and secure aggregation is shared by the assertions below;
during its first round bank-c's node is killed and restarted; after its second round
the SuperLink (with the ServerApp) is killed, restarted on the same state, and the run
resumed from its checkpoint. A rogue SuperNode (its key registered, as any bank's
second node would be) answers every roll call as bank-a without bank-a's signing key;
a rogue Control API client holding only the CA certificate calls the public port.
Every process is stopped at the end, also when a test fails.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import socket
import ssl
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fedrisk_cli import run_cli
from omegaconf import OmegaConf

from fedrisk.deploy.control import Control, ControlError
from fedrisk.deploy.folders import BankFolder
from fedrisk.deploy.processes import Child, stop_all
from fedrisk.deploy.superlink import flower_environment
from fedrisk.deploy.supernode import supernode_argv
from fedrisk.secure import certificates
from fedrisk.secure.signing import generate_signing_key, save_private_key

pytestmark = pytest.mark.slow

BANKS = ("bank-a", "bank-b", "bank-c")
KILLED = "bank-c"
ROUNDS = 3
#: The SuperLink is killed once this round is checkpointed; the resumed run does the rest.
CRASH_AFTER = 2
START_TIMEOUT_S = 240.0
RUN_TIMEOUT_S = 900.0


@dataclass
class Pilot:
    root: Path
    port: int
    children: list[Child] = field(default_factory=list)
    nodes: dict[str, Child] = field(default_factory=dict)
    server: Child | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def fedrisk(self, name: str, *args: str) -> Child:
        child = Child(
            name,
            [sys.executable, "-m", "fedrisk", *args],
            log=self.root / "logs" / f"{name}.log",
        )
        self.children.append(child)
        return child

    def start_server(self) -> Child:
        """Start `fedrisk server` on the coordinator folder (its state.db is kept)."""
        self.server = self.fedrisk(
            "server", "server", "--consortium", str(self.root / "coordinator"),
            "--host", "127.0.0.1", "--port", str(self.port),
        )  # fmt: skip
        self.server.wait_for("Ctrl-C stops the SuperLink", timeout=START_TIMEOUT_S)
        return self.server

    def run(self, name: str, *overrides: str) -> Child:
        """Start `fedrisk run` on the coordinator folder and held-out table."""
        return self.fedrisk(
            name, "run", "--consortium", str(self.root / "coordinator"),
            "--test", str(self.root / "data" / "heldout.csv"), *overrides,
        )  # fmt: skip

    def operator(self) -> Control:
        """The coordinator's operator: the Control API on the SuperLink's loopback port."""
        coordinator = self.root / "coordinator"
        address = (coordinator / "superlink" / "listening.txt").read_text().strip()
        home = self.root / "operator"
        return Control(address, root_certificates=coordinator / "ca_cert.pem", flwr_home=home)

    def start_impostor(self) -> Child:
        """A registered SuperNode that names bank-a but holds a signing key of its own."""
        rogue = self.root / "impostor"
        shutil.copytree(self.root / "bank-a", rogue, ignore=shutil.ignore_patterns("supernode"))
        (rogue / "signing_key.pem").unlink()
        save_private_key(generate_signing_key(), rogue / "signing_key.pem")
        private, public = certificates.node_auth_key_files(certificates.generate_node_auth_key())
        (rogue / "supernode_auth_key").write_bytes(private)
        with self.operator() as operator:
            operator.register_node(public, name="impostor")
        bank_a = BankFolder.open(self.root / "bank-a")
        folder = BankFolder(path=rogue, institution="bank-a", manifest=bank_a.manifest)
        argv = supernode_argv(
            folder,
            superlink=self.address,
            data=self.root / "data" / "bank-a.csv",
            runtime_port=_free_port(),
        )
        child = Child(
            "impostor",
            argv,
            log=self.root / "logs" / "impostor.log",
            env=flower_environment(rogue / "flwr-home"),
        )
        self.children.append(child)
        child.wait_for(r"SuperNode ID: \d+", timeout=START_TIMEOUT_S)
        return child

    def start_node(self, bank: str) -> Child:
        node = self.fedrisk(
            f"node-{bank}",
            "node",
            "--consortium",
            str(self.root / bank),
            "--data",
            str(self.root / "data" / f"{bank}.csv"),
            "--superlink",
            self.address,
        )
        self.nodes[bank] = node
        return node


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _accept_two_of_three(policy: Path) -> None:
    """Let a bank's policy accept 2-of-3 SecAgg+ without the consistency round.

    With 3 banks the default (a threshold above 2/3 of a secret's holders: 3 of 3)
    tolerates no dropout, and this pilot kills a node mid-round. 2 of 3 tolerates one,
    at the price the README states: the coordinator and one colluding bank can unmask
    the third (`tests/client/test_secagg_node.py` performs that attack).
    """
    text = OmegaConf.load(policy)
    OmegaConf.update(text, "secagg.min_threshold_fraction", 0.5)
    # Without the consistency round: at 2 of 3 it adds nothing against a coordinator
    # with one colluding bank (README), and each extra message exchange costs this
    # pilot ≈30 s of ClientApp start-ups on two cores. The round itself is exercised
    # by the simulations (tests/integration/test_secagg_simulation.py) and the
    # attack tests (tests/client/test_secagg_node.py).
    OmegaConf.update(text, "secagg.consistency_check", False)
    policy.write_text(OmegaConf.to_yaml(text), encoding="utf-8")


@pytest.fixture(scope="module")
def pilot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pilot]:
    root = tmp_path_factory.mktemp("pilot")
    banks = ",".join(BANKS)
    for args in (
        ("consortium", "init", "--name", "ci", "--institutions", banks,
         "--coordinator-host", "localhost", "--out", str(root)),
        ("data", "synth", "--institutions", banks, "--out", str(root / "data"), "--rows", "900"),
    ):  # fmt: skip
        done = run_cli(*args, cwd=root)
        assert done.returncode == 0, done.stderr
    for bank in BANKS:
        _accept_two_of_three(root / bank / "policy.yaml")
    pilot = Pilot(root=root, port=_free_port())
    try:
        pilot.start_server()
        for bank in BANKS:
            pilot.start_node(bank)
        for bank in BANKS:
            pilot.nodes[bank].wait_for("waiting for runs", timeout=START_TIMEOUT_S)
        pilot.start_impostor()
        yield pilot
    finally:
        stop_all(pilot.children)


@dataclass
class PilotRun:
    run_dir: Path
    first_flower_run: str
    crashed_exit: int
    crashed_output: str
    exit_code: int
    output: str
    restarted_output: str


def _wait_for_checkpoint(run_dir: Path, completed_round: int, *, run: Child) -> None:
    """Wait until ``run_dir``'s checkpoint is of ``completed_round`` (the run going on)."""
    state = run_dir / "checkpoint" / "state.json"
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not state.is_file() or json.loads(state.read_text())["completed_round"] < completed_round:
        assert run.running() and time.monotonic() < deadline, run.tail(40)
        time.sleep(0.2)


@pytest.fixture(scope="module")
def pilot_run(pilot: Pilot) -> PilotRun:
    """The pilot run, with a bank's node and then the SuperLink killed along the way.

    No federated evaluation (``strategy.fraction_evaluate=0``): on these two shared cores
    each message exchange costs ≈30 s of ClientApp start-ups, and the held-out
    evaluation at the coordinator already measures the model.
    """
    run_dir = pilot.root / "run"
    run = pilot.run(
        "run",
        "privacy=dpsgd", "secagg=secaggplus", f"rounds={ROUNDS}",
        # The banks' policies accept both (see _accept_two_of_three).
        "secagg.threshold=2", "secagg.consistency_check=false",
        "strategy.fraction_evaluate=0",
        # The killed node's training message is never answered: the round waits out
        # the masked-update stage. Live banks need 60-75 s for it here (ClientApp
        # start-up, DP-SGD, masking), so it cannot be much shorter than 90 s.
        "round_timeout=180", "secagg.timeouts.train=90", "secagg.timeouts.unmask=180",
        "secagg.timeouts.keys=180",
        f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    # Kill bank-c's node (SuperNode and ClientApp, at once) when round 1's training
    # message reaches it, then start it again with the same folder and key.
    pilot.nodes[KILLED].wait_for(r"received train", timeout=START_TIMEOUT_S)
    pilot.nodes[KILLED].kill()
    restarted = pilot.start_node(KILLED)
    restarted.wait_for("waiting for runs", timeout=START_TIMEOUT_S)
    # Kill the SuperLink, SuperExec and ServerApp at once, as a crash would, once round
    # CRASH_AFTER is checkpointed; restart `fedrisk server` on the same state.db (the
    # registrations are kept, the nodes reconnect) and resume the run.
    _wait_for_checkpoint(run_dir, CRASH_AFTER, run=run)
    assert pilot.server is not None
    pilot.server.kill()
    pilot.start_server()
    crashed_exit = run.wait_exit(timeout=START_TIMEOUT_S)
    submitted = re.search(r"fedrisk run: run (\d+) submitted to ", run.log.read_text())
    assert submitted is not None, run.tail(40)
    resumed = pilot.run("resumed-run", f"resume={run_dir}")
    code = resumed.wait_exit(timeout=RUN_TIMEOUT_S)
    return PilotRun(
        run_dir=run_dir,
        first_flower_run=submitted.group(1),
        crashed_exit=crashed_exit,
        crashed_output=run.tail(40),
        exit_code=code,
        output=resumed.tail(40),
        restarted_output=restarted.tail(40),
    )


def test_unregistered_node_is_refused(pilot: Pilot) -> None:
    rogue = pilot.root / "rogue"
    shutil.copytree(pilot.root / "bank-b", rogue, ignore=shutil.ignore_patterns("supernode"))
    private, public = certificates.node_auth_key_files(certificates.generate_node_auth_key())
    (rogue / "supernode_auth_key").write_bytes(private)
    (rogue / "supernode_auth_key.pub").write_bytes(public)

    done = run_cli(
        "node", "--consortium", str(rogue), "--data", str(pilot.root / "data" / "bank-b.csv"),
        "--superlink", pilot.address, cwd=pilot.root, timeout=START_TIMEOUT_S,
    )  # fmt: skip

    assert done.returncode == 1, done.stdout + done.stderr
    assert "refused this SuperNode's key" in done.stderr
    log = (pilot.root / "coordinator" / "superlink" / "superlink.log").read_text()
    assert "No SuperNode found with the given public key" in log


def test_a_control_client_with_only_the_ca_certificate_is_refused(pilot: Pilot) -> None:
    """Flower's Control API authenticates nobody; the public port does not serve it."""
    ca_cert = pilot.root / "coordinator" / "ca_cert.pem"
    _, public = certificates.node_auth_key_files(certificates.generate_node_auth_key())
    home = pilot.root / "rogue-control"
    with Control(pilot.address, root_certificates=ca_cert, flwr_home=home) as rogue:
        with pytest.raises(ControlError, match="403"):
            rogue.runs()
        with pytest.raises(ControlError, match="403"):
            rogue.register_node(public, name="rogue")
    refused = (pilot.root / "coordinator" / "superlink" / "refused.log").read_text()
    assert "refused POST /v1/control/list-runs" in refused
    assert "refused POST /v1/control/register-node" in refused
    with pilot.operator() as operator:  # the rogue's key was not registered
        assert operator.register_node(public, name="rogue-check") is True


def test_plaintext_client_is_refused(pilot: Pilot) -> None:
    plain = http.client.HTTPConnection("127.0.0.1", pilot.port, timeout=20)
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        plain.request("POST", "/v1/fleet/activate-node", body=b"\x00")
        plain.getresponse()
    plain.close()
    # The same request over TLS, verified against the consortium CA, is answered.
    context = ssl.create_default_context(cafile=str(pilot.root / "coordinator" / "ca_cert.pem"))
    secure = http.client.HTTPSConnection("localhost", pilot.port, timeout=20, context=context)
    secure.request("POST", "/v1/fleet/activate-node", body=b"\x00")
    assert secure.getresponse().status >= 400  # a malformed request, but a TLS answer
    secure.close()


def test_bank_with_invalid_data_does_not_join(pilot: Pilot) -> None:
    broken = pilot.root / "broken.csv"
    lines = (pilot.root / "data" / "bank-a.csv").read_text().splitlines()
    header = lines[0].split(",")
    column = header.index("interest_rate")
    rows = [",".join(v for i, v in enumerate(line.split(",")) if i != column) for line in lines]
    broken.write_text("\n".join(rows) + "\n")

    done = run_cli(
        "node", "--consortium", str(pilot.root / "bank-a"), "--data", str(broken),
        "--superlink", pilot.address, cwd=pilot.root, timeout=START_TIMEOUT_S,
    )  # fmt: skip

    assert done.returncode == 2
    assert done.stderr.startswith("fedrisk node: bank-a does not join: ")
    assert "interest_rate" in done.stderr and str(broken) in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_run_finishes_with_a_complete_summary(pilot_run: PilotRun) -> None:
    assert pilot_run.exit_code == 0, pilot_run.output
    summary = json.loads((pilot_run.run_dir / "summary.json").read_text())
    assert summary["rounds_completed"] == ROUNDS
    assert summary["stop_reason"] == "completed"
    assert summary["privacy"] == "dpsgd" and summary["secagg"] == "secaggplus"
    assert summary["deployment"]["status"] == "completed"
    assert 0.5 < summary["global"]["auc"] <= 1.0
    assert set(summary["institutions"]) == set(BANKS)
    for bank in BANKS:
        entry = summary["institutions"][bank]
        assert entry["n_train"] is None  # secure aggregation: the coordinator never learns it
        assert 0.0 < entry["epsilon_spent"] <= entry["epsilon_budget"] == 8.0
        assert entry["ledger_verified"] is True
    for name in ("metrics.jsonl", "model.npz", "config.yaml", "consortium.json", "auc.png"):
        assert (pilot_run.run_dir / name).is_file(), name
    assert len(list((pilot_run.run_dir / "ledgers").glob("ledger-*.jsonl"))) == len(BANKS)


def test_a_node_claiming_another_banks_name_is_refused_and_logged(pilot_run: PilotRun) -> None:
    """The impostor answered every roll call as bank-a; bank-a itself still took part."""
    summary = json.loads((pilot_run.run_dir / "summary.json").read_text())
    impostor = [why for why in summary["rejected_nodes"].values() if "'bank-a'" in why]
    assert impostor, summary["rejected_nodes"]
    assert "claims 'bank-a' without proof" in impostor[0] and "does not verify" in impostor[0]
    assert "bank-a" in summary["institutions"]
    assert summary["institutions"]["bank-a"]["ledger_verified"] is True


def test_killed_node_rejoins_in_a_later_round(pilot_run: PilotRun) -> None:
    rounds = [
        json.loads(line) for line in (pilot_run.run_dir / "metrics.jsonl").read_text().splitlines()
    ]
    first = rounds[0]["secagg"]
    assert KILLED not in first["participants"] or KILLED in first["dropped"]["train"], first
    assert first["unmasked"] is True
    later = [r["round"] for r in rounds[1:] if KILLED in r["secagg"]["participants"]
             and KILLED not in r["secagg"]["dropped"]["train"]
             and KILLED not in r["secagg"]["dropped"]["unmask"]]  # fmt: skip
    assert later, [r["secagg"] for r in rounds]
    assert "received train" in pilot_run.restarted_output


def test_every_ledger_verifies(pilot: Pilot, pilot_run: PilotRun) -> None:
    done = run_cli("audit", str(pilot_run.run_dir), cwd=pilot.root, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    report = json.loads((pilot_run.run_dir / "audit" / "report.json").read_text())
    assert sorted(report["institutions"]) == sorted(BANKS)
    assert report["passed"] and all(check["passed"] for check in report["checks"])
    for bank in BANKS:  # the crash and the resume released no (run, round) twice
        figures = report["institutions"][bank]
        assert figures["entries"] == figures["rounds"], (bank, figures)


def test_the_crashed_run_says_how_to_resume_it(pilot_run: PilotRun) -> None:
    assert pilot_run.crashed_exit == 1, pilot_run.crashed_output
    assert f"resume={pilot_run.run_dir}`" in pilot_run.crashed_output
    assert "Traceback" not in pilot_run.crashed_output


def test_the_resumed_run_continues_the_same_run_with_every_round_once(
    pilot_run: PilotRun,
) -> None:
    """The resumed run goes on under the crashed run's id; it is not compared bit for bit.

    A deployment draws its DP noise from the operating system
    (``privacy.noise_source=os_entropy``) and its secure-aggregation keys afresh in every
    Flower run, and a round a bank trained before the crash is sent again re-masked, so
    no two deployment runs, interrupted or not, end with the same bits. What must hold:
    every round is in ``metrics.jsonl`` once, the fedrisk run id is the first Flower
    run's while Flower counts a new run, and each bank's ledger holds at most one entry
    per round of that run, the last of which is the ε the summary reports.
    """
    assert pilot_run.exit_code == 0, pilot_run.output
    summary = json.loads((pilot_run.run_dir / "summary.json").read_text())
    assert summary["run_id"] == pilot_run.first_flower_run
    assert summary["deployment"]["flower_run_id"] != pilot_run.first_flower_run
    assert summary["deployment"]["resumed_after_round"] == CRASH_AFTER
    metrics = (pilot_run.run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["round"] for line in metrics] == list(range(1, ROUNDS + 1))
    for bank in BANKS:
        ledger = next((pilot_run.run_dir / "ledgers").glob(f"ledger-{bank}-*.jsonl"))
        entries = [json.loads(line) for line in ledger.read_text().splitlines()]
        assert {entry["run_id"] for entry in entries} == {summary["run_id"]}
        rounds = [entry["round"] for entry in entries]
        if bank == KILLED:  # killed in round 1, sat out round 2 (new keys), back for 3
            assert rounds == sorted(set(rounds)) and 1 not in rounds and ROUNDS in rounds
        else:
            assert rounds == list(range(1, ROUNDS + 1)), (bank, rounds)
        assert summary["institutions"][bank]["epsilon_spent"] == entries[-1]["epsilon"]
