"""Agents: one module per algorithm; shared pieces in :mod:`smpc_gym.agents.common`.

Use :func:`smpc_gym.agents.base.get_algorithm` to look an algorithm up by ``--algo`` name.
"""
