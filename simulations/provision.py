"""Provision a simulated consortium: each bank's signing key, the manifest, ledgers.

Each simulated institution gets a folder of its own (its private Ed25519 key, mode
0600, and its ledgers); the public manifest (names, public keys, budgets) goes in the
run directory. After the run, every ledger is verified against the manifest and a
copy is kept in ``ledgers/`` of the run directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fedrisk.client.node_keys import SIGNING_KEY_FILE
from fedrisk.conf.consortium import InstitutionConfig
from fedrisk.conf.root import FedriskConfig
from fedrisk.privacy.manifest import MANIFEST_FILE, ConsortiumManifest, InstitutionRecord
from fedrisk.secure.signing import (
    generate_signing_key,
    load_private_key,
    public_key_text,
    save_private_key,
)


@dataclass(frozen=True)
class Provisioned:
    """Where a simulated consortium's privacy material lives."""

    state_dir: Path
    manifest_path: Path
    manifest: ConsortiumManifest


def provision(
    settings: FedriskConfig,
    institutions: Sequence[InstitutionConfig],
    *,
    run_dir: Path,
) -> Provisioned:
    """Create (or reuse) each institution's key and write the consortium manifest.

    Keys already in ``privacy.state_dir`` are reused, so repeated runs on the same
    data keep one identity and one ledger per institution.
    """
    state_dir = Path(settings.privacy.state_dir or run_dir / "institutions").resolve()
    records = []
    for inst in institutions:
        folder = state_dir / inst.name
        folder.mkdir(parents=True, exist_ok=True)
        key_file = folder / SIGNING_KEY_FILE
        if not key_file.exists():
            save_private_key(generate_signing_key(), key_file)
        public = public_key_text(load_private_key(key_file).public_key())
        records.append(
            InstitutionRecord(
                name=inst.name,
                public_key=public,
                budget_epsilon=inst.epsilon_budget or settings.privacy.epsilon_budget,
                budget_delta=inst.delta or settings.privacy.delta,
            )
        )
    manifest = ConsortiumManifest(name=settings.consortium.name, institutions=tuple(records))
    manifest_path = run_dir / MANIFEST_FILE
    manifest.save(manifest_path)
    return Provisioned(state_dir=state_dir, manifest_path=manifest_path, manifest=manifest)
