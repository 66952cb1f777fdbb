"""GreedyMouse rendering: rgb_array colours per cell, ansi text, human window (headless)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import smpc_gym  # noqa: F401  (registers GreedyMouse-v0)
from smpc_gym.envs.greedy_mouse.maps import load_map
from smpc_gym.envs.greedy_mouse.render import (
    COLORS,
    PygameWindow,
    render_ansi,
    render_rgb_array,
)

CELL = 32


def cell_block(frame: np.ndarray, pos: tuple[int, int]) -> np.ndarray:
    r, c = pos
    return frame[r * CELL : (r + 1) * CELL, c * CELL : (c + 1) * CELL].reshape(-1, 3)


def has_colour(block: np.ndarray, name: str) -> bool:
    return bool((block == np.array(COLORS[name], dtype=np.uint8)).all(axis=1).any())


def test_rgb_array_draws_each_entity_in_its_cell():
    grid = load_map("classic")
    mouse, cat, cheese = (1, 1), (4, 5), (9, 9)
    frame = render_rgb_array(grid.walls, [mouse], [cat], [cheese], ["score", "step: 3"])
    h, w = grid.walls.shape
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert frame.shape[1] == w * CELL and frame.shape[0] > h * CELL  # text panel below
    for r in range(h):
        for c in range(w):
            block = cell_block(frame, (r, c))
            assert has_colour(block, "wall") == bool(grid.walls[r, c])
            assert has_colour(block, "mouse") == ((r, c) == mouse)
            assert has_colour(block, "cat") == ((r, c) == cat)
            assert has_colour(block, "cheese") == ((r, c) == cheese)
    # The text panel holds (light) text pixels.
    panel = frame[h * CELL :].reshape(-1, 3)
    assert (panel.astype(int).sum(axis=1) > 600).any()


def test_rgb_array_several_mice_and_bad_positions():
    grid = load_map("classic")
    frame = render_rgb_array(grid.walls, [(1, 1), (1, 2)], [(4, 5)], [(9, 9), (9, 10)], [])
    assert frame.shape == (11 * CELL, 14 * CELL, 3)
    for pos in ((1, 1), (1, 2)):
        assert has_colour(cell_block(frame, pos), "mouse")
    with pytest.raises(ValueError, match=r"mouse position \(20, 1\) is outside"):
        render_rgb_array(grid.walls, [(20, 1)], [], [], [])


def test_ansi_exact():
    walls = np.array([[1, 1, 1, 1], [1, 0, 0, 1], [1, 0, 0, 1], [1, 1, 1, 1]], dtype=bool)
    text = render_ansi(walls, [(1, 1)], [(2, 2)], [(1, 2)], ["step: 0"])
    assert text == "####\n#mo#\n# c#\n####\nstep: 0\n"


def test_env_ansi_and_rgb_array():
    env = gym.make("GreedyMouse-v0", render_mode="ansi")
    _, info = env.reset(seed=4)
    text = env.render()
    rows = text.splitlines()
    assert len(rows) == 11 + 2
    (mr, mc), (cr, cc), (hr, hc) = info["mouse"], info["cat"], info["cheese"]
    assert rows[mr][mc] == "m" and rows[cr][cc] == "c" and rows[hr][hc] == "o"
    assert "cheese eaten: 0" in rows[11] and "times eaten: 0" in rows[11]
    assert rows[12].startswith("step: 0")
    env = gym.make("GreedyMouse-v0", render_mode="rgb_array")
    env.reset(seed=4)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape[:2][1] == 14 * CELL


def test_human_mode_headless_and_close_twice():
    env = gym.make("GreedyMouse-v0", render_mode="human")
    env.unwrapped.metadata = {**env.unwrapped.metadata, "render_fps": 1000}
    env.reset(seed=0)
    for a in range(3):
        env.step(a)
    assert env.render() is None
    assert env.unwrapped._window is not None and env.unwrapped._window.is_open
    env.close()
    env.close()
    assert env.unwrapped._window is None


def test_window_close_is_idempotent_without_show():
    win = PygameWindow()
    win.close()
    win.show(np.zeros((20, 30, 3), dtype=np.uint8), fps=1000)
    assert win.is_open
    win.close()
    win.close()
    assert not win.is_open
    with pytest.raises(ValueError, match=r"shape \(H, W, 3\)"):
        win.show(np.zeros((4, 4)), fps=10)
