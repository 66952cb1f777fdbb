"""Map parsing and validation (pure logic)."""

import numpy as np
import pytest

from smpc_gym.envs.greedy_mouse.env import GreedyMouseEnv
from smpc_gym.envs.greedy_mouse.maps import (
    TABLE_BYTES_PER_PAIR,
    MapError,
    builtin_maps,
    check_table_memory,
    load_map,
    parse_map,
)


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


def test_non_utf8_map_file_names_the_file_and_encoding(tmp_path):
    p = tmp_path / "latin1.txt"
    p.write_bytes("XXXXX\nX...X\nX..X\u00e9\n".encode("latin-1"))
    with pytest.raises(
        MapError, match=r"latin1\.txt' is not UTF-8 text: byte 0xe9 at offset 16 \(line 3\)"
    ):
        load_map(str(p))


def test_table_memory_check_states_the_need():
    grid = parse_map("X" * 12 + "\n" + ("X" + " " * 10 + "X\n") * 10 + "X" * 12, name="room")
    need = grid.num_free**2 * TABLE_BYTES_PER_PAIR
    assert check_table_memory(grid, available=need) == need
    with pytest.raises(MapError, match=r"100 free cells make 10,000 pairs.*at most about 99 free"):
        check_table_memory(grid, available=need - 1)


def test_huge_map_fails_before_building_tables(tmp_path):
    """A 400 x 400 open map needs terabytes of tables: refused up front, naming the size."""
    p = tmp_path / "huge.txt"
    n = 400
    rows = ["X" * (n + 2)] + ["X" + " " * n + "X"] * n + ["X" * (n + 2)]
    p.write_text("\n".join(rows) + "\n")
    with pytest.raises(MapError, match=r"160,000 free cells .* TiB .* of memory is available"):
        GreedyMouseEnv(map=str(p))
