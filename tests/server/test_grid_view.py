"""EligibleGrid: a strategy sees only the eligible nodes; exchanges pass straight through."""

from __future__ import annotations

from test_prompt_grid import ScriptedGrid, outgoing

from fedrisk.server.grid_view import EligibleGrid
from fedrisk.server.prompt_grid import PromptGrid
from fedrisk.strategies.exchange import LONGEST_PULL_S, collect


def test_shows_only_the_eligible_nodes_in_institution_order() -> None:
    view = EligibleGrid(ScriptedGrid([]), [3, 1])
    assert list(view.get_node_ids()) == [3, 1]


def test_collect_through_the_view_pushes_and_pulls_on_the_wrapped_grid_at_its_pace() -> None:
    scripted = ScriptedGrid([0.0, 0.02])
    view = EligibleGrid(PromptGrid(scripted, longest_pull=0.01), [1, 2])

    got = collect(view, outgoing(2), timeout=5)

    assert view.longest_pull == 0.01
    assert sorted(r.content.config_records["r"]["i"] for r in got.replies) == [0, 1]
    assert scripted.pulls[0] == {"m0", "m1"} and got.unanswered == set()
    assert EligibleGrid(ScriptedGrid([]), [1]).longest_pull == LONGEST_PULL_S
