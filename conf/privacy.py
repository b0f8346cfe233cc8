"""Schema of the ``privacy`` config group: record-level DP-SGD and its accounting."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from fedrisk.privacy.accountant import AccountantKind


class PrivacyMode(str, Enum):
    """Which differential-privacy mechanism protects the run."""

    none = "none"
    dpsgd = "dpsgd"
    central = "central"


class ClippingSide(str, Enum):
    """Where institution-level DP (``privacy=central``) clips each update."""

    server = "server"
    client = "client"


class NoiseSource(str, Enum):
    """Where DP-SGD's sampling and noise generators get their seeds."""

    seeded = "seeded"
    os_entropy = "os_entropy"


class GradSampleMode(str, Enum):
    """Per-sample-gradient engines: fedrisk's ``linear`` or one of Opacus's."""

    linear = "linear"
    hooks = "hooks"
    functorch = "functorch"
    ew = "ew"


@dataclass
class PrivacyConfig:
    """Schema of ``privacy/*.yaml``.

    Parameters
    ----------
    mode : PrivacyMode (default: none)
        ``none`` or ``dpsgd`` (record-level DP-SGD at every institution, Opacus).
    epsilon_budget : float (default: 8.0)
        Each institution's ε budget, unless its consortium entry sets its own.
    delta : float (default: 1e-5)
        Each institution's δ, unless its consortium entry sets its own; must not
        exceed 1 / (the institution's training rows).
    target_epsilon : float | None (default: None)
        ε the whole planned run should spend; the noise multiplier is calibrated to
        it once, before round 1. ``None`` targets each institution's remaining budget.
    noise_multiplier : float | None (default: None)
        Fixed noise multiplier instead of calibration.
    max_grad_norm : float (default: 1.0)
        Per-sample gradient clipping norm.
    accountant : AccountantKind (default: rdp)
        ``rdp`` (conservative, used for enforcement) or ``prv`` (tighter).
    noise_source : NoiseSource (default: seeded)
        ``seeded`` makes simulations reproducible (and says so in the run record);
        ``os_entropy`` reseeds from the operating system before every step, as
        deployments do.
    grad_sample_mode : GradSampleMode (default: linear)
        Per-sample-gradient engine. ``linear`` (fedrisk's one-backward clipping for
        models whose parameters are all in Linear layers; others fall back to ``ew``)
        or Opacus's ``ew`` (expanded weights), ``hooks`` or ``functorch``. Measured by
        ``benchmarks/dp_overhead.py`` for the default MLP: Opacus ew 3.35× a plain
        round, hooks 3.99×, functorch 7.2×.
    state_dir : str | None (default: None)
        Where each simulated institution keeps its signing key and ledgers. ``None``
        gives every run fresh institutions (under the run directory); set a path to
        let repeated runs on the same data compose their spending.
    central_noise_multiplier : float (default: 1.0)
        ``privacy=central`` (institution-level DP-FedAvg, Flower's wrappers): Gaussian
        noise std on the aggregate over the clipping norm.
    central_clipping_norm : float (default: 1.0)
        ``privacy=central``: L2 bound on each institution's model update.
    central_clipping_side : ClippingSide (default: server)
        ``privacy=central``: clip at the server (Flower's ServerSideFixedClipping) or
        at each institution (ClientSideFixedClipping with ``fixedclipping_mod``). The
        ε budget is ``epsilon_budget`` at ``delta``, institution-level.
    """

    mode: PrivacyMode = field(default=PrivacyMode.none, metadata={"help": "DP mechanism"})
    epsilon_budget: float = field(default=8.0, metadata={"help": "default ε budget"})
    delta: float = field(default=1e-5, metadata={"help": "default δ"})
    target_epsilon: float | None = field(default=None, metadata={"help": "ε to calibrate to"})
    noise_multiplier: float | None = field(default=None, metadata={"help": "fixed noise"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "clipping norm"})
    accountant: AccountantKind = field(default=AccountantKind.rdp, metadata={"help": "rdp/prv"})
    noise_source: NoiseSource = field(
        default=NoiseSource.seeded, metadata={"help": "seeded or os_entropy"}
    )
    grad_sample_mode: GradSampleMode = field(
        default=GradSampleMode.linear, metadata={"help": "linear, ew, hooks or functorch"}
    )
    state_dir: str | None = field(default=None, metadata={"help": "institutions' keys/ledgers"})
    central_noise_multiplier: float = field(
        default=1.0, metadata={"help": "privacy=central: noise std / clipping norm on the sum"}
    )
    central_clipping_norm: float = field(
        default=1.0, metadata={"help": "privacy=central: L2 bound on each institution's update"}
    )
    central_clipping_side: ClippingSide = field(
        default=ClippingSide.server, metadata={"help": "privacy=central: server or client"}
    )

    def __post_init__(self) -> None:
        self.mode = PrivacyMode(self.mode)
        self.accountant = AccountantKind(self.accountant)
        self.noise_source = NoiseSource(self.noise_source)
        self.grad_sample_mode = GradSampleMode(self.grad_sample_mode)
        self.central_clipping_side = ClippingSide(self.central_clipping_side)
        if not self.central_noise_multiplier > 0:
            raise ValueError(
                "`privacy.central_noise_multiplier` must be positive; "
                f"got {self.central_noise_multiplier}"
            )
        if not self.central_clipping_norm > 0:
            raise ValueError(
                "`privacy.central_clipping_norm` must be positive; "
                f"got {self.central_clipping_norm}"
            )
        if not self.epsilon_budget > 0:
            raise ValueError(
                f"`privacy.epsilon_budget` must be positive; got {self.epsilon_budget}"
            )
        if not 0.0 < self.delta < 1.0:
            raise ValueError(f"`privacy.delta` must be in (0, 1); got {self.delta}")
        if self.target_epsilon is not None and not self.target_epsilon > 0:
            raise ValueError(
                f"`privacy.target_epsilon` must be positive; got {self.target_epsilon}"
            )
        if self.noise_multiplier is not None and not self.noise_multiplier > 0:
            raise ValueError(
                f"`privacy.noise_multiplier` must be positive; got {self.noise_multiplier}"
            )
        if self.noise_multiplier is not None and self.target_epsilon is not None:
            raise ValueError(
                "set one of `privacy.noise_multiplier` and `privacy.target_epsilon`; got both"
            )
        if not self.max_grad_norm > 0:
            raise ValueError(f"`privacy.max_grad_norm` must be positive; got {self.max_grad_norm}")
