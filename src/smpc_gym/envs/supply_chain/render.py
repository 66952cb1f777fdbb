"""Rendering for SupplyChain: an ``ansi`` step table and a pygame dashboard.

pygame is imported only inside :class:`Dashboard` (lazily, on first draw).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from smpc_gym.envs.supply_chain.game import (
    ScalarStep,
    ScalarSupplyChainGame,
    SupplyChainConfig,
)

_COLUMNS = (
    "player",
    "price",
    "qty",
    "stock",
    "sold",
    "revenue",
    "cost",
    "reward",
    "wasted",
    "cum_rev",
    "cum_waste",
    "ncr",
)


def ansi_table(
    config: SupplyChainConfig, game: ScalarSupplyChainGame, step: ScalarStep | None
) -> str:
    """A plain-text table of the current step: one header line, one row per player.

    ``price``/``qty`` are the (clipped) actions of the step, ``stock`` the stock after it,
    ``sold`` = shipped (player 0) / sold (player 1), ``cum_rev`` the cumulative reward,
    ``cum_waste`` the cumulative wasted units, ``ncr`` = cum reward - cum waste cost.
    """
    if step is None:
        head = (
            f"t={game.t}/{config.max_cycles}  (reset)  stock=({game.stock[0]:.2f}, "
            f"{game.stock[1]:.2f})"
        )
        return head + "\n"
    head = (
        f"t={game.t}/{config.max_cycles}  demand={step.demand:.2f}  "
        f"unmet={step.unmet_demand[1]:.2f}  shipped={step.shipped:.2f}"
        + ("  [episode end]" if step.truncated else "")
    )
    widths = (8, 6, 6, 6, 6, 8, 8, 8, 6, 8, 9, 8)
    lines = [head, " ".join(c.rjust(w) for c, w in zip(_COLUMNS, widths, strict=True))]
    sold = (step.shipped, step.sold)
    for i in range(2):
        cells = (
            f"p{i}",
            f"{game.last_price[i]:.2f}",
            f"{game.last_quantity[i]:.2f}",
            f"{game.stock[i]:.2f}",
            f"{sold[i]:.2f}",
            f"{step.revenue[i]:.2f}",
            f"{step.cost[i]:.2f}",
            f"{step.reward[i]:.2f}",
            f"{step.wasted[i]:.2f}",
            f"{game.cum_reward[i]:.1f}",
            f"{game.cum_waste[i]:.2f}",
            f"{step.ncr[i]:.1f}",
        )
        lines.append(" ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)))
    return "\n".join(lines) + "\n"


_BG = (248, 248, 244)
_INK = (30, 30, 30)
_GRID = (200, 200, 200)
_PLAYER_COLORS = ((40, 110, 200), (215, 110, 30))
_WASTE = (190, 40, 40)
_DEMAND = (60, 150, 70)


class Dashboard:
    """pygame dashboard: per player a stock bar, price / quantity bars and running totals,
    player 1's consumer demand, and a chart of cumulative reward and waste over the episode.
    """

    width = 820
    height = 520

    def __init__(self, config: SupplyChainConfig, render_mode: str, metadata: dict) -> None:
        import pygame

        self._pg = pygame
        self.config = config
        self.render_mode = render_mode
        self.fps = int(metadata.get("render_fps", 4))
        pygame.font.init()
        self.font = pygame.font.Font(None, 24)
        self.small = pygame.font.Font(None, 20)
        self.big = pygame.font.Font(None, 30)
        self.window: Any = None
        self.clock: Any = None
        if render_mode == "human":
            pygame.display.init()
            pygame.display.set_caption("SupplyChain-v0")
            self.window = pygame.display.set_mode((self.width, self.height))
            self.clock = pygame.time.Clock()
        self.surface = pygame.Surface((self.width, self.height))

    # ------------------------------------------------------------- helpers
    def _text(self, text: str, pos: tuple[int, int], font: Any = None, color=_INK) -> None:
        img = (font or self.font).render(text, True, color)
        self.surface.blit(img, pos)

    def _hbar(
        self, label: str, value: float, cap: float, pos: tuple[int, int], color, width: int = 200
    ) -> None:
        pg = self._pg
        x, y = pos
        self._text(label, (x, y + 2), self.small)
        bx = x + 95
        pg.draw.rect(self.surface, (255, 255, 255), (bx, y, width, 18))
        frac = 0.0 if cap <= 0 else min(max(value / cap, 0.0), 1.0)
        pg.draw.rect(self.surface, color, (bx, y, int(width * frac), 18))
        pg.draw.rect(self.surface, _INK, (bx, y, width, 18), 1)
        self._text(f"{value:.2f} / {cap:g}", (bx + width + 8, y + 2), self.small)

    def _panel(self, i: int, game: ScalarSupplyChainGame, step: ScalarStep | None, x0: int) -> None:
        pg = self._pg
        cfg = self.config
        color = _PLAYER_COLORS[i]
        title = ("player_0 - upstream", "player_1 - downstream")[i]
        pg.draw.rect(self.surface, (255, 255, 255), (x0, 50, 370, 260))
        pg.draw.rect(self.surface, color, (x0, 50, 370, 260), 2)
        self._text(title, (x0 + 10, 58), self.font, color)
        # stock bar (vertical)
        bx, by, bh = x0 + 20, 90, 170
        frac = min(max(game.stock[i] / cfg.storage_cap, 0.0), 1.0)
        pg.draw.rect(self.surface, (235, 235, 235), (bx, by, 40, bh))
        pg.draw.rect(self.surface, color, (bx, by + int(bh * (1 - frac)), 40, int(bh * frac)))
        pg.draw.rect(self.surface, _INK, (bx, by, 40, bh), 1)
        self._text("stock", (bx + 2, by + bh + 4), self.small)
        self._text(f"{game.stock[i]:.1f}/{cfg.storage_cap:g}", (bx - 2, by + bh + 20), self.small)
        # action bars
        rx = x0 + 75
        self._hbar("price", game.last_price[i], cfg.p_max[i], (rx, 92), color, 120)
        self._hbar("quantity", game.last_quantity[i], cfg.q_max, (rx, 118), color, 120)
        if i == 1:
            demand = 0.0 if step is None else step.demand
            self._hbar("demand", demand, cfg.demand_scale, (rx, 144), _DEMAND, 120)
        else:
            self._hbar("raw cost", cfg.raw_cost, cfg.p_max[0], (rx, 144), (120, 120, 120), 120)
        reward = 0.0 if step is None else step.reward[i]
        sold = 0.0 if step is None else (step.shipped, step.sold)[i]
        wasted = 0.0 if step is None else step.wasted[i]
        rows = (
            (f"{('shipped', 'sold')[i]} this step", f"{sold:8.2f}"),
            ("reward this step", f"{reward:8.2f}"),
            ("wasted this step", f"{wasted:8.2f}"),
            ("cumulative revenue", f"{game.cum_reward[i]:8.1f}"),
            ("cumulative waste (units)", f"{game.cum_waste[i]:8.2f}"),
            ("cumulative waste cost", f"{game.cum_waste_cost[i]:8.2f}"),
        )
        for k, (name, val) in enumerate(rows):
            y = 174 + 20 * k
            self._text(name, (rx, y), self.small)
            self._text(val, (rx + 200, y), self.small, _WASTE if "waste" in name else _INK)

    def _chart(self, history: Sequence[ScalarStep]) -> None:
        pg = self._pg
        cfg = self.config
        x0, y0, w, h = 60, 345, 720, 140
        pg.draw.rect(self.surface, (255, 255, 255), (x0, y0, w, h))
        pg.draw.rect(self.surface, _INK, (x0, y0, w, h), 1)
        self._text(
            "cumulative revenue per player (solid) and cumulative waste cost (dashed)",
            (x0, y0 - 22),
            self.small,
        )
        self._text("step", (x0 + w // 2 - 15, y0 + h + 6), self.small)
        self._text("0", (x0 - 4, y0 + h + 6), self.small)
        self._text(str(cfg.max_cycles), (x0 + w - 12, y0 + h + 6), self.small)
        if not history:
            return
        cum = np.cumsum([s.reward for s in history], axis=0)
        wcost = np.cumsum([s.waste_cost for s in history], axis=0)
        lo = min(0.0, float(cum.min()), -float(wcost.max()))
        hi = max(1.0, float(cum.max()), float(wcost.max()))
        n = cfg.max_cycles

        def pt(t: int, v: float) -> tuple[int, int]:
            return (
                int(x0 + w * (t + 1) / max(n, 1)),
                int(y0 + h - 4 - (h - 8) * (v - lo) / (hi - lo)),
            )

        zero = pt(-1, 0.0)[1]
        pg.draw.line(self.surface, _GRID, (x0, zero), (x0 + w, zero))
        self._text(f"{hi:.0f}", (x0 - 50, y0), self.small)
        self._text(f"{lo:.0f}", (x0 - 50, y0 + h - 14), self.small)
        for i in range(2):
            pts = [pt(-1, 0.0)] + [pt(t, float(v)) for t, v in enumerate(cum[:, i])]
            pg.draw.lines(self.surface, _PLAYER_COLORS[i], False, pts, 3)
            wpts = [pt(-1, 0.0)] + [pt(t, float(v)) for t, v in enumerate(wcost[:, i])]
            for k in range(0, len(wpts) - 1, 2):
                pg.draw.line(self.surface, _PLAYER_COLORS[i], wpts[k], wpts[k + 1], 2)
            self._text(
                f"p{i}: {cum[-1, i]:.0f}",
                (x0 + w - 170 + 85 * i, y0 + 6),
                self.small,
                _PLAYER_COLORS[i],
            )

    # ------------------------------------------------------------- public
    def draw(
        self,
        game: ScalarSupplyChainGame,
        step: ScalarStep | None,
        history: Sequence[ScalarStep],
    ) -> np.ndarray | None:
        """Draw the dashboard; returns an (H, W, 3) uint8 frame (``rgb_array``) or None."""
        pg = self._pg
        cfg = self.config
        self.surface.fill(_BG)
        status = "episode end" if step is not None and step.truncated else ""
        self._text(f"SupplyChain   t = {game.t} / {cfg.max_cycles}   {status}", (20, 14), self.big)
        if step is not None:
            self._text(
                f"consumer demand D = {step.demand:.2f}   unmet = {step.unmet_demand[1]:.2f}",
                (430, 18),
                self.font,
                _DEMAND,
            )
        self._panel(0, game, step, 10)
        self._panel(1, game, step, 440)
        # goods flow arrow between the panels
        shipped = 0.0 if step is None else step.shipped
        pg.draw.line(self.surface, _INK, (384, 180), (428, 180), 3)
        pg.draw.polygon(self.surface, _INK, [(424, 172), (436, 180), (424, 188)])
        self._text("goods", (388, 150), self.small)
        self._text(f"x={shipped:.1f}", (386, 193), self.small)
        self._text(f"@{game.last_price[0]:.1f}", (386, 211), self.small)
        self._chart(history)
        if self.render_mode == "human":
            assert self.window is not None and self.clock is not None
            pg.event.pump()
            self.window.blit(self.surface, (0, 0))
            pg.display.flip()
            self.clock.tick(self.fps)
            return None
        return np.transpose(np.array(pg.surfarray.pixels3d(self.surface)), (1, 0, 2)).copy()

    def close(self) -> None:
        """Close the window (human mode)."""
        if self.window is not None:
            self._pg.display.quit()
            self.window = None
