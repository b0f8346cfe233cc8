"""fedrisk's SecAgg+ on Flower's Message API: the coordinator learns only the sum.

Threat model (see also the README's "Secure aggregation" section):

- **Curious coordinator.** It follows the protocol but tries to learn one institution's
  update. It sees masked vectors (uniform in ``Z_{2^bits}`` without the masks), sealed
  shares it cannot open, and, at unmask, exactly the self-mask shares of institutions
  whose vectors it holds and the pairwise seeds shared with institutions whose vectors
  it does not. From these it can compute the sum and nothing else.
- **Key substitution.** Each institution's X25519 key is advertised once per run under
  its Ed25519 key from the consortium manifest; every peer verifies the signature itself
  and aborts naming the peer when it fails. A coordinator that swaps keys is caught.
- **Colluding institutions.** Fewer than ``threshold`` neighbours of an institution,
  even together with the coordinator, cannot reconstruct its self-mask.
- **Late and replayed messages.** Every record carries the run tag and round; pairwise
  seeds and share keys are derived with both; a reply after the round closed, or a
  record from an earlier round or another run, is rejected. An institution masks at
  most once per round and reveals at most once per round.
- **Inconsistent dropout sets.** A coordinator that tells different institutions
  different survivor sets could collect a self-mask and the pairwise seeds of the same
  institution. ``secagg.consistency_check=true`` adds Bonawitz et al.'s consistency
  round (survivors sign the survivor set before revealing); it is off by default.

Not covered: a coordinator that drops honest institutions on purpose to isolate one
(the sum of a round with few survivors reveals little but is still the sum), and
dropouts of an institution at unmask when one of its neighbours already dropped before
masking (the pairwise seed between the two is held by nobody else: the round fails
closed).
"""

from fedrisk.strategies.secagg.wire import ProtocolAbort, Stage

__all__ = ["ProtocolAbort", "Stage"]
