from __future__ import annotations

import pytest

from fedrisk.strategies.secagg.graph import neighbours, threshold_for

IDS = [9, 3, 1_000_003, 42, 7, 12, 88, 5, 61, 2, 300, 17, 4]


def _graph(count: int, degree: int, *, round: int = 1, run_tag: str = "run-a") -> dict:
    return neighbours(IDS[:count], degree=degree, run_tag=run_tag, round=round)


@pytest.mark.parametrize(("count", "degree"), [(6, 0), (6, 6), (6, 8), (5, 4), (3, 2), (9, 0)])
def test_degree_zero_or_at_least_n_minus_one_gives_the_full_graph(count: int, degree: int) -> None:
    graph = _graph(count, degree)

    assert set(graph) == set(IDS[:count])
    for node, peers in graph.items():
        assert peers == tuple(sorted(set(IDS[:count]) - {node}))


@pytest.mark.parametrize(("count", "degree"), [(7, 2), (7, 4), (10, 4), (13, 2), (13, 6), (6, 4)])
def test_ring_graph_is_symmetric_regular_and_loop_free(count: int, degree: int) -> None:
    graph = _graph(count, degree)

    assert set(graph) == set(IDS[:count])
    for node, peers in graph.items():
        assert len(peers) == len(set(peers)) == degree
        assert node not in peers
        assert list(peers) == sorted(peers)
        assert all(node in graph[peer] for peer in peers)


@pytest.mark.parametrize(("count", "degree"), [(7, 2), (13, 4)])
def test_ring_graph_is_one_connected_ring(count: int, degree: int) -> None:
    graph = _graph(count, degree)
    start = IDS[0]
    seen, frontier = {start}, [start]
    while frontier:
        node = frontier.pop()
        for peer in graph[node]:
            if peer not in seen:
                seen.add(peer)
                frontier.append(peer)

    assert seen == set(IDS[:count])


def test_graph_is_deterministic_and_ignores_the_order_of_participants() -> None:
    first = _graph(13, 4, round=5)

    again = neighbours(list(reversed(IDS)), degree=4, run_tag="run-a", round=5)

    assert again == first == _graph(13, 4, round=5)


def test_graph_changes_with_the_round_and_the_run() -> None:
    base = _graph(13, 4, round=5)

    assert _graph(13, 4, round=6) != base
    assert _graph(13, 4, round=5, run_tag="run-b") != base


@pytest.mark.parametrize("degree", [1, 3, -2, -1])
def test_odd_or_negative_degree_is_rejected(degree: int) -> None:
    with pytest.raises(ValueError, match=f"0 or a positive even number; got {degree}"):
        _graph(7, degree)


def test_repeated_node_ids_are_rejected() -> None:
    with pytest.raises(ValueError, match="distinct node ids"):
        neighbours([1, 2, 2, 3], degree=0, run_tag="run-a", round=1)


@pytest.mark.parametrize(
    ("count", "configured", "expected"),
    [
        *[(n, 0, t) for n, t in [(3, 3), (4, 3), (5, 4), (6, 5), (7, 5), (10, 7), (20, 14)]],
        *[(3, 2, 2), (5, 3, 3), (5, 4, 4), (5, 5, 5), (9, 5, 5)],  # explicit, down to a majority
    ],
)
def test_threshold_defaults_to_above_two_thirds_or_takes_a_valid_setting(
    count: int, configured: int, expected: int
) -> None:
    assert threshold_for(count, configured) == expected


@pytest.mark.parametrize(
    ("count", "configured"), [(4, 2), (4, 1), (4, 5), (6, 3), (5, 6), (2, 0), (2, 2), (0, 0)]
)
def test_threshold_at_or_below_half_above_the_count_or_without_three_holders_is_rejected(
    count: int, configured: int
) -> None:
    with pytest.raises(ValueError, match=f"exceed half of the {count} share holders"):
        threshold_for(count, configured)
