"""Check every training reply before it reaches aggregation.

A reply is rejected, with one sentence saying why, when it is not bound to this run
and round, when its update does not have the global model's parameter names, shapes
and dtypes, when it holds NaN or Inf, when it is farther from the global model than a
known bound, or when it repeats an update the same institution already sent.

Notes
-----
What the coordinator can know about an honest update:

* Plaintext updates: shapes, dtypes and finiteness always. A norm bound only where
  the run implies one: under ``privacy=central`` with clipping at the institution,
  Flower's ``fixedclipping_mod`` clips the update (reply minus global model) to the
  clipping norm, so anything beyond it was not clipped. Under DP-SGD
  (``privacy=dpsgd``) per-sample *gradients* are clipped, not the update: its norm
  grows with the learning rate, the steps, the optimiser and the noise, so the run
  implies no bound and none is enforced unless the operator sets
  ``validation.max_update_norm``. With server-side clipping the coordinator clips
  itself. The same optional bound applies without DP.
* Secure aggregation: the coordinator sees only masked words, uniformly random on
  their own. Only the vector's length and word dtype, and the run and round binding,
  can be checked; NaN, Inf and a large norm cannot exist in the masked ring elements,
  and the encoder at the institution clips each coordinate to ``secagg.clip`` before
  masking. The SecAgg+ records are checked again by the unmasker.
* Replays: a reply bound to another round is rejected by its binding; a reply that
  carries bytes the institution already sent in an earlier round (same digest) is
  rejected as a replay even if its binding was rewritten.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from flwr.app import ArrayRecord, Message

from fedrisk.conf.privacy import ClippingSide, PrivacyMode
from fedrisk.conf.root import FedriskConfig
from fedrisk.strategies import messages
from fedrisk.strategies.secagg import wire
from fedrisk.strategies.secagg.encoding import Encoding

#: Relative slack on a clipping bound: float32 rounding of a clipped update.
NORM_SLACK = 1e-4


@dataclass(frozen=True)
class MaskedShape:
    """What a masked vector must look like under secure aggregation."""

    length: int
    dtype: np.dtype


class UpdateValidator:
    """Validate training replies against the global model and the run.

    Parameters
    ----------
    run_id : str
        fedrisk's run id every reply must be bound to.
    reference : ArrayRecord | None (default: None)
        The model whose parameter names, shapes and dtypes an update must have: the
        initial model (a FedAdam global model is float64, its updates float32); None
        uses the global model of the round.
    norm_bound : float | None (default: None)
        Largest allowed L2 distance between an update and the global model.
    masked : MaskedShape | None (default: None)
        Under secure aggregation, the masked vector's length and dtype (then no
        plaintext check applies).

    Raises
    ------
    ValueError
        If ``norm_bound`` is not positive.
    """

    def __init__(
        self,
        *,
        run_id: str,
        reference: ArrayRecord | None = None,
        norm_bound: float | None = None,
        masked: MaskedShape | None = None,
    ) -> None:
        if norm_bound is not None and not norm_bound > 0:
            raise ValueError(f"`norm_bound` must be positive; got {norm_bound}")
        self.run_id = run_id
        self.norm_bound = norm_bound
        self._masked = masked
        self._reference = (
            None
            if reference is None
            else {name: (tuple(a.shape), a.dtype) for name, a in reference.items()}
        )
        self._sent: dict[str, dict[str, int]] = {}

    def check(
        self, reply: Message, *, institution: str, server_round: int, global_arrays: ArrayRecord
    ) -> str | None:
        """Return why ``reply`` must be rejected, or None if it may be aggregated."""
        problem = self._binding(reply, server_round)
        if problem is None:
            arrays = reply.content.array_records.get(messages.ARRAYS)
            if arrays is None:
                return "reply carried no update"
            problem = (
                self._masked_vector(arrays)
                if self._masked is not None
                else self._plaintext(arrays, global_arrays)
            )
        if problem is None:
            earlier = self._sent.get(institution, {}).get(
                messages.update_digest(reply.content.array_records[messages.ARRAYS])
            )
            if earlier is not None:
                problem = f"replays its update of round {earlier}"
        return problem

    def screen(
        self, replies: Mapping[str, Message], *, server_round: int, global_arrays: ArrayRecord
    ) -> dict[str, str]:
        """Check one round's replies (by institution); return the rejected ones' reasons.

        Every digest received is remembered, accepted or not, so a later copy is a replay.
        """
        rejected = {}
        for name, reply in replies.items():
            reason = self.check(
                reply, institution=name, server_round=server_round, global_arrays=global_arrays
            )
            if reason is not None:
                rejected[name] = reason
        for name, reply in replies.items():
            arrays = reply.content.array_records.get(messages.ARRAYS)
            if arrays is not None:
                self.remember(name, messages.update_digest(arrays), server_round)
        return rejected

    def remember(self, institution: str, digest: str, server_round: int) -> None:
        """Note an update an institution sent (a later copy of it is a replay)."""
        self._sent.setdefault(institution, {}).setdefault(digest, server_round)

    def remember_records(self, records: list[dict]) -> None:
        """Note every update digest in earlier rounds' ``metrics.jsonl`` records."""
        for record in records:
            for name, digest in dict(record.get("update_sha256", {})).items():
                self.remember(str(name), str(digest), int(record["round"]))

    def _binding(self, reply: Message, server_round: int) -> str | None:
        binding = reply.content.config_records.get(messages.BINDING)
        if binding is None:
            return "reply is not bound to a run and round"
        run_id, bound_round = binding.get(messages.RUN_ID), binding.get(messages.SERVER_ROUND)
        if run_id != self.run_id:
            return f"reply is bound to run {run_id!s}, not {self.run_id}"
        if bound_round != server_round:
            return f"reply is bound to round {bound_round!s}, not round {server_round}"
        return None

    def _masked_vector(self, arrays: ArrayRecord) -> str | None:
        expected = self._masked
        if expected is None:
            return None
        if list(arrays.keys()) != [wire.VECTOR_KEY]:
            return f"masked update must hold one `{wire.VECTOR_KEY}`; got {sorted(arrays)}"
        vector = arrays[wire.VECTOR_KEY]
        if vector.dtype != str(expected.dtype) or tuple(vector.shape) != (expected.length,):
            return (
                f"masked vector is {vector.dtype}{list(vector.shape)}, expected "
                f"{expected.dtype}[{expected.length}]"
            )
        return None

    def _plaintext(self, arrays: ArrayRecord, global_arrays: ArrayRecord) -> str | None:
        expected = self._reference or {
            name: (tuple(a.shape), a.dtype) for name, a in global_arrays.items()
        }
        if list(arrays.keys()) != list(expected):
            return f"update names parameters {sorted(arrays)}, expected {sorted(expected)}"
        squared = 0.0
        for name, reference in global_arrays.items():
            array = arrays[name]
            shape, dtype = expected[name]
            if tuple(array.shape) != shape:
                return f"`{name}` has shape {list(array.shape)}, expected {list(shape)}"
            if array.dtype != dtype:
                return f"`{name}` has dtype {array.dtype}, expected {dtype}"
            try:
                values = array.numpy()
            except (ValueError, TypeError) as err:
                return f"`{name}` cannot be decoded: {err}"
            if not np.isfinite(values).all():
                bad = "NaN" if np.isnan(values).any() else "Inf"
                return f"`{name}` holds {bad}"
            delta = values.astype(np.float64) - reference.numpy().astype(np.float64)
            squared += float(np.dot(delta.ravel(), delta.ravel()))
        norm = squared**0.5
        if self.norm_bound is not None and norm > self.norm_bound * (1 + NORM_SLACK):
            return f"update norm {norm:.4g} exceeds the bound {self.norm_bound:g}"
        return None


def validator_for(
    settings: FedriskConfig, *, run_id: str, initial: ArrayRecord, n_institutions: int
) -> UpdateValidator:
    """Build the validator a run's configuration calls for (see the module notes).

    Raises
    ------
    ValueError
        If the secure-aggregation encoding could overflow for ``n_institutions``.
    """
    privacy = settings.privacy
    if settings.secagg.enabled:
        encoding = Encoding.for_run(
            settings.secagg,
            institutions=n_institutions,
            uniform_weights=privacy.mode is PrivacyMode.central,
        )
        n_parameters = sum(int(np.prod(a.shape)) for a in initial.values())
        masked = MaskedShape(length=encoding.vector_length(n_parameters), dtype=encoding.dtype)
        return UpdateValidator(run_id=run_id, reference=initial, masked=masked)
    bounds = [settings.validation.max_update_norm]
    if privacy.mode is PrivacyMode.central and privacy.central_clipping_side is ClippingSide.client:
        bounds.append(privacy.central_clipping_norm)
    known = [b for b in bounds if b is not None]
    return UpdateValidator(
        run_id=run_id, reference=initial, norm_bound=min(known) if known else None
    )
