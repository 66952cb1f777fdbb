"""Map parsing and validation (pure logic)."""

import numpy as np
import pytest

from smpc_gym.envs.greedy_mouse.maps import MapError, builtin_maps, load_map, parse_map


def test_builtin_maps_shipped():
    assert {"classic", "maze41"} <= set(builtin_maps())
    grid = load_map("classic")
    assert (grid.width, grid.height, grid.num_free) == (14, 11, 74)
    assert load_map("maze41").walls.shape == (41, 41)


def test_load_by_path(tmp_path):
    p = tmp_path / "m.txt"
    p.write_text("XXXXX\nX...X\nXXXXX")  # no final newline is fine
    grid = load_map(str(p))
    assert grid.num_free == 3


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty"),
        ("XXXX\nX  X\nXXX\n", "ragged: row 2 has width 3"),
        ("XXXX\nX Q X\n", "ragged"),
        ("XXXXX\nX  QX\nXXXXX\n", r"unknown character 'Q' at \(row 1, col 3\)"),
        ("XXXX\nX XX\nXXXX\n", "1 free cells"),
    ],
)
def test_bad_maps(text, match):
    with pytest.raises(MapError, match=match):
        parse_map(text)


def test_disconnected_map():
    grid = parse_map("XXXXXXX\nX  X  X\nXXXXXXX\n")
    with pytest.raises(MapError, match="disconnected"):
        grid.topology(8)


def test_diagonal_connectivity_depends_on_rules():
    grid = parse_map("XXXXX\nX XXX\nXX  X\nXXXXX\n")
    assert grid.topology(8, cut_corners=True).dist.max() == 2
    with pytest.raises(MapError, match="disconnected"):
        grid.topology(8, cut_corners=False)
    with pytest.raises(MapError, match="disconnected"):
        grid.topology(4)


def test_unknown_map_names_choices():
    with pytest.raises(MapError, match="classic"):
        load_map("no_such_map")


def test_next_hop_is_on_a_shortest_path():
    topo = load_map("classic").topology(8)
    n = topo.dist.shape[0]
    src, dst = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    hop = topo.next_hop
    off_diag = src != dst
    assert (topo.dist[hop, dst][off_diag] == topo.dist[off_diag] - 1).all()
    assert (topo.dist[src, hop][off_diag] == 1).all()
