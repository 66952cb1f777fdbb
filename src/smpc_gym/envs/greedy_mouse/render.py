"""Rendering for GreedyMouse worlds (single- and multi-mouse).

Three outputs, shared by :class:`~smpc_gym.envs.greedy_mouse.env.GreedyMouseEnv` and the
multi-mouse PettingZoo env:

* :func:`render_rgb_array` — a ``uint8 (H, W, 3)`` frame drawn with pygame: walls beige,
  free cells light, mice blue (numbered when there are several), cat black, cheese orange,
  and text lines (score, step) in a panel below the grid.
* :func:`render_ansi` — a text grid: ``#`` wall, ``m`` mouse, ``c`` cat, ``o`` cheese,
  space free, followed by the text lines.
* :class:`PygameWindow` — shows frames in a window for ``render_mode="human"``.

pygame is imported lazily, inside these functions only, so importing this module is cheap
and works without a display (tests set ``SDL_VIDEODRIVER=dummy``).

All positions are ``(row, col)`` with row 0 at the top.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

#: RGB colours used by :func:`render_rgb_array`.
COLORS: dict[str, tuple[int, int, int]] = {
    "wall": (222, 201, 160),  # beige
    "wall_edge": (190, 166, 120),
    "free": (246, 244, 238),  # light
    "grid": (226, 222, 212),
    "mouse": (40, 90, 220),  # blue
    "cat": (20, 20, 20),  # black
    "mouse_ear": (150, 180, 250),
    "cheese": (250, 160, 20),  # orange
    "cheese_edge": (200, 110, 10),
    "panel": (40, 40, 48),
    "text": (240, 240, 240),
    "label": (255, 255, 255),
}

#: Height in pixels of one text line in the panel below the grid, per 32 px of cell size.
_LINE_PX_AT_32 = 22


def _pygame() -> Any:
    """Import pygame lazily, without its banner on stdout."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    return pygame


def _font(size: int) -> Any:
    pygame = _pygame()

    if not pygame.font.get_init():
        pygame.font.init()
    return pygame.font.Font(None, size)


def _check_walls(walls: np.ndarray) -> np.ndarray:
    walls = np.asarray(walls, dtype=bool)
    if walls.ndim != 2 or walls.size == 0:
        raise ValueError(f"walls must be a non-empty 2-D bool array, got shape {walls.shape}")
    return walls


def _check_pos(kind: str, pos: Sequence[int], shape: tuple[int, int]) -> tuple[int, int]:
    r, c = int(pos[0]), int(pos[1])
    if not (0 <= r < shape[0] and 0 <= c < shape[1]):
        raise ValueError(f"{kind} position {(r, c)} is outside the {shape[0]}x{shape[1]} grid")
    return r, c


def render_rgb_array(
    walls: np.ndarray,
    mice: Sequence[tuple[int, int]],
    cats: Sequence[tuple[int, int]],
    cheeses: Sequence[tuple[int, int]],
    lines: Sequence[str],
    cell_px: int = 32,
) -> np.ndarray:
    """Draw one frame of a GreedyMouse world.

    Args:
        walls: ``(H, W)`` bool, True on walls.
        mice: mouse positions ``(row, col)``; with more than one mouse each is labelled
            with its index.
        cats: cat positions.
        cheeses: cheese positions.
        lines: text lines drawn in a panel below the grid (e.g. score and step).
        cell_px: side of one grid cell in pixels (>= 8).

    Returns:
        ``uint8`` array of shape ``(H * cell_px + len(lines) * line_px + pad, W * cell_px, 3)``.
    """
    pygame = _pygame()

    walls = _check_walls(walls)
    if int(cell_px) < 8:
        raise ValueError(f"cell_px must be >= 8, got {cell_px!r}")
    cell_px = int(cell_px)
    h, w = walls.shape
    line_px = max(12, round(_LINE_PX_AT_32 * cell_px / 32))
    pad = line_px // 3 if lines else 0
    panel_h = len(lines) * line_px + 2 * pad
    width, height = w * cell_px, h * cell_px + panel_h

    surf = pygame.Surface((width, height))
    surf.fill(COLORS["free"])
    # Free-cell grid lines, then walls.
    for r in range(h):
        for c in range(w):
            rect = pygame.Rect(c * cell_px, r * cell_px, cell_px, cell_px)
            if walls[r, c]:
                pygame.draw.rect(surf, COLORS["wall"], rect)
                pygame.draw.rect(surf, COLORS["wall_edge"], rect, width=1)
            else:
                pygame.draw.rect(surf, COLORS["grid"], rect, width=1)

    def centre(pos: tuple[int, int]) -> tuple[int, int]:
        return (pos[1] * cell_px + cell_px // 2, pos[0] * cell_px + cell_px // 2)

    # Cheese: an orange wedge-ish square with holes; cat: black circle with ears;
    # mouse: blue circle. Drawn in that order so the agents stay visible on top.
    for pos in cheeses:
        r, c = _check_pos("cheese", pos, (h, w))
        cx, cy = centre((r, c))
        s = int(cell_px * 0.40)
        pts = [(cx - s, cy + s * 2 // 3), (cx + s, cy + s * 2 // 3), (cx + s, cy - s * 2 // 3)]
        pygame.draw.polygon(surf, COLORS["cheese"], pts)
        pygame.draw.polygon(surf, COLORS["cheese_edge"], pts, width=1)
        hole = max(1, cell_px // 14)
        pygame.draw.circle(surf, COLORS["cheese_edge"], (cx + s // 2, cy + s // 4), hole)
        pygame.draw.circle(surf, COLORS["cheese_edge"], (cx + s // 8, cy + s // 2), hole)
    for pos in cats:
        r, c = _check_pos("cat", pos, (h, w))
        cx, cy = centre((r, c))
        rad = int(cell_px * 0.34)
        ear = int(cell_px * 0.16)
        for sx in (-1, 1):
            pygame.draw.polygon(
                surf,
                COLORS["cat"],
                [
                    (cx + sx * rad // 2 - ear // 2, cy - rad + ear // 2),
                    (cx + sx * rad, cy - rad - ear // 2),
                    (cx + sx * rad, cy - rad // 3),
                ],
            )
        pygame.draw.circle(surf, COLORS["cat"], (cx, cy + 1), rad)
    label_font = _font(max(10, int(cell_px * 0.6))) if len(mice) > 1 else None
    for i, pos in enumerate(mice):
        r, c = _check_pos("mouse", pos, (h, w))
        cx, cy = centre((r, c))
        rad = int(cell_px * 0.30)
        ear = max(2, int(cell_px * 0.15))
        for sx in (-1, 1):
            ex, ey = cx + sx * int(cell_px * 0.24), cy - int(cell_px * 0.22)
            pygame.draw.circle(surf, COLORS["mouse"], (ex, ey), ear)
            pygame.draw.circle(surf, COLORS["mouse_ear"], (ex, ey), max(1, ear // 2))
        pygame.draw.circle(surf, COLORS["mouse"], (cx, cy + cell_px // 16), rad)
        if label_font is not None:
            txt = label_font.render(str(i), True, COLORS["label"])
            surf.blit(txt, txt.get_rect(center=(cx, cy + 2)))

    if lines:
        pygame.draw.rect(surf, COLORS["panel"], pygame.Rect(0, h * cell_px, width, panel_h))
        font = _font(line_px)
        for k, text in enumerate(lines):
            txt = font.render(str(text), True, COLORS["text"])
            surf.blit(
                txt, (pad, h * cell_px + pad + k * line_px + (line_px - txt.get_height()) // 2)
            )

    # surfarray is (W, H, 3); transpose to the (H, W, 3) image convention.
    return np.ascontiguousarray(pygame.surfarray.pixels3d(surf).transpose(1, 0, 2)).astype(
        np.uint8, copy=False
    )


def render_ansi(
    walls: np.ndarray,
    mice: Sequence[tuple[int, int]],
    cats: Sequence[tuple[int, int]],
    cheeses: Sequence[tuple[int, int]],
    lines: Sequence[str],
) -> str:
    """A text picture of the world: ``#`` wall, ``m`` mouse, ``c`` cat, ``o`` cheese.

    Free cells are spaces. When entities share a cell the one drawn last wins, in the
    order cheese, cat, mouse (so a mouse on the cheese shows as ``m``). Each grid row is
    one line; the text ``lines`` follow, and the string ends with a newline.
    """
    walls = _check_walls(walls)
    h, w = walls.shape
    grid = [["#" if walls[r, c] else " " for c in range(w)] for r in range(h)]
    for kind, ch, positions in (("cheese", "o", cheeses), ("cat", "c", cats), ("mouse", "m", mice)):
        for pos in positions:
            r, c = _check_pos(kind, pos, (h, w))
            grid[r][c] = ch
    out = ["".join(row) for row in grid]
    out.extend(str(s) for s in lines)
    return "\n".join(out) + "\n"


class PygameWindow:
    """A pygame window showing rendered frames, for ``render_mode="human"``.

    The window is opened by the first :meth:`show` and sized to the frame; :meth:`close`
    closes it and may be called any number of times. Works headless with
    ``SDL_VIDEODRIVER=dummy``.
    """

    def __init__(self, caption: str = "GreedyMouse") -> None:
        """Create the (not yet opened) window with a title ``caption``."""
        self.caption = caption
        self._screen: Any = None
        self._clock: Any = None

    @property
    def is_open(self) -> bool:
        """True between the first :meth:`show` and :meth:`close`."""
        return self._screen is not None

    def show(self, frame: np.ndarray, fps: int) -> None:
        """Display ``frame`` (``uint8 (H, W, 3)``), then wait to keep at most ``fps`` frames/s."""
        pygame = _pygame()

        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame must have shape (H, W, 3), got {frame.shape}")
        size = (int(frame.shape[1]), int(frame.shape[0]))
        if self._screen is None:
            pygame.display.init()
            pygame.display.set_caption(self.caption)
            self._screen = pygame.display.set_mode(size)
            self._clock = pygame.time.Clock()
        elif self._screen.get_size() != size:
            self._screen = pygame.display.set_mode(size)
        pygame.event.pump()
        surf = pygame.surfarray.make_surface(np.ascontiguousarray(frame.transpose(1, 0, 2)))
        self._screen.blit(surf, (0, 0))
        pygame.display.flip()
        if fps and fps > 0:
            self._clock.tick(int(fps))

    def close(self) -> None:
        """Close the window (idempotent)."""
        if self._screen is None:
            return
        _pygame().display.quit()
        self._screen = None
        self._clock = None
