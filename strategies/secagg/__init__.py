"""fedrisk's SecAgg+ on Flower's Message API: the coordinator learns only the sum.

Protocol (Bonawitz et al., CCS 2017; Bell et al., CCS 2020), per run and per round:

1. **Advertise, once per run** (at the roll call): each institution draws a master
   secret, derives an X25519 identity key and one X25519 key per round, and signs their
   public halves with its Ed25519 key from the consortium manifest.
2. **Hand out round-key shares, once per advertisement**: after verifying every peer's
   advertisement, it Shamir-shares each round key among all other institutions (a
   strict majority reconstructs it), each share sealed to its holder's identity key.
3. **Train, every round**: the reply carries the weighted update in fixed point, masked
   with a fresh self-mask and pairwise masks (ChaCha20 keystreams), plus Shamir shares
   of the self-mask seed sealed to each neighbour (one share stays with the sender).
4. **Consistency, every round** (``secagg.consistency_check``, on by default): survivors
   sign the survivor set.
5. **Unmask, every round**: survivors reveal self-mask
   shares of institutions whose update arrived and round-key shares of those whose update
   did not; the coordinator removes every mask and decodes the weighted mean.

Threat model (also in the README's "Secure aggregation" section):

- **Curious coordinator.** It follows the protocol but tries to learn one institution's
  update. It sees masked vectors (uniform in ``Z_{2^bits}`` without the masks), sealed
  shares it cannot open, and at unmask a threshold of shares of either the self-mask or
  the round key of each institution — never both — so it can compute the sum and
  nothing else.
- **Key substitution.** Every institution verifies every advertisement against the
  manifest itself and aborts naming the peer when a signature fails; a coordinator that
  swaps or replays old keys is caught.
- **Active coordinator** (defaults: consistency check on, threshold ``⌊2s/3⌋ + 1`` of
  the ``s`` shares of a self-mask). A bank reveals nothing for a survivor set holding
  fewer than the threshold of its share holders, or signed by fewer than the quorum
  (`fedrisk.strategies.secagg.round_info.RoundInfo.signature_quorum`); it aborts naming
  the stage and `fedrisk.strategies.secagg.wire.Rule`. Which coalitions of the
  coordinator and banks can still unmask a bank, at the defaults and at lower settings,
  is in `fedrisk.conf.secagg.SecAggConfig`.
- **Late and replayed messages.** Records carry the run tag and round; keys and seeds
  are derived per run and round; a reply after the round closed, or a record from an
  earlier round or another run, is rejected. An institution masks at most once per
  round and reveals at most once per round.
- **Inconsistent dropout sets.** A coordinator that tells different institutions
  different survivor sets could collect a threshold of both secrets of one institution;
  the consistency round (survivors sign the survivor set before revealing anything)
  stops it unless enough banks collude to sign both sets.

- **A round asked again after a crash** (``resume=RUN_DIR``). The resumed run makes new
  run keys; a bank answers the crashed round again only if it had not yet answered that
  round's unmasking (it notes each one on its disk before revealing,
  `fedrisk.client.revealed_rounds`). So a coordinator cannot unmask the round once over
  one set of banks before the crash and again over another after it and subtract: on
  the complete graph (the default) with a threshold above half, the banks that
  helped unmask before are too many for the rest to reach the threshold again. On a
  sparse SecAgg+ graph this holds per neighbourhood, not as a proof for every graph.
  A DP bank re-sends its kept release masked anew (never trained twice) with a signed
  resend statement for the auditor.

Not covered: a coordinator that excludes honest institutions on purpose so that few
remain (the result is still only a sum, but of fewer updates), and denial of service.
"""

from fedrisk.strategies.secagg.wire import ProtocolAbort, Stage

__all__ = ["ProtocolAbort", "Stage"]
