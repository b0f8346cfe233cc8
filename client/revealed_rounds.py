"""The rounds whose unmasking an institution answered, kept on its disk across crashes.

A resumed run asks again for the round the coordinator crashed in. Sending that round's
update again is safe only if no aggregate of it can have been unmasked before the
crash: otherwise the coordinator could hold the sum over one set of banks from before
the crash and the sum over another set after it, and their difference would expose
the banks in one set and not the other. An institution therefore notes, before it
reveals anything, each round whose unmask request it answers, and never contributes to
that round of that run again (it sits the round out and takes part from the next).

With the reconstruction threshold a strict majority (the default), an aggregate
unmasked before the crash needed at least a threshold of banks to reveal, so at most a
minority can contribute to the same round after the resume: too few to unmask it
again. A crash before any unmask (the common case: the round was being trained) leaves
nothing noted, and every bank re-sends its round, so the resumed run equals the
uninterrupted one.

File: ``<state dir>/revealed-rounds.json`` holding ``{"run_id": …, "rounds": […]}`` for
the institution's latest run, written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

from fedrisk.privacy.atomic_file import write_atomically

FILE_NAME = "revealed-rounds.json"


def note_revealed(state_dir: Path, *, run_id: str, server_round: int) -> None:
    """Record, durably, that this institution answers the unmasking of ``server_round``."""
    path = state_dir / FILE_NAME
    rounds = set(revealed(state_dir, run_id=run_id))
    rounds.add(server_round)
    data = json.dumps({"run_id": run_id, "rounds": sorted(rounds)}, sort_keys=True)
    write_atomically(path, data.encode("utf-8"))


def revealed(state_dir: Path, *, run_id: str) -> list[int]:
    """Return the rounds of ``run_id`` whose unmasking this institution answered.

    Raises
    ------
    ValueError
        Naming the file, if it exists but is not what `note_revealed` writes (the node
        must not guess: an unreadable record could let a round be sent twice).
    """
    path = state_dir / FILE_NAME
    if not path.exists():
        return []
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        rounds = record["rounds"]
        if not isinstance(record["run_id"], str) or not all(
            isinstance(r, int) and not isinstance(r, bool) for r in rounds
        ):
            raise TypeError("wrong types")
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"{path} must hold the revealed rounds of the latest run ({err}); move it "
            "aside only if no run is being resumed"
        ) from None
    return list(rounds) if record["run_id"] == run_id else []
