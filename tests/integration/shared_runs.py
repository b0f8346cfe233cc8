"""Simulations that several integration modules read, each run once per test session.

The fixtures that run them live in ``conftest.py``; the overrides live here so that a
module which must start the same configuration again (killed, then resumed) names it
once. A test that reads a shared run directory may add files to it (an audit, a
report) but changes nothing the others read.
"""

#: The default run (no overrides: banks_5, 10 rounds, FedAvg, baselines) is shared too:
#: the acceptance bar (test_simulation) and the plaintext twin of a secure run's first
#: rounds (test_secagg_simulation).

#: banks_3, two rounds, seed 11, with the pooled and local-only baselines: the summary
#: contract (test_simulation) and the recomputed risk outputs (test_risk_outputs).
THREE_BANKS = ("consortium=banks_3", "rounds=2", "seed=11")

#: DP-SGD under SecAgg+ with FedAdam on banks_3: the uninterrupted twin of the run
#: test_secure_resume kills mid-round and resumes, and the DP-SGD + SecAgg+ run the
#: audit (test_audit_cli, test_secagg_simulation) and the browser (test_html_in_browser)
#: read.
DPSGD_SECAGG = (
    "consortium=banks_3",
    "rounds=4",
    "seed=11",
    "strategy=fedadam",
    "privacy=dpsgd",
    "privacy.target_epsilon=4.0",
    "secagg=secaggplus",
    "simulation.baselines=false",
    "task.train.epochs=1",
)
DPSGD_SECAGG_ROUNDS = 4
DPSGD_SECAGG_BANKS = ("bank_a", "bank_b", "bank_c")
