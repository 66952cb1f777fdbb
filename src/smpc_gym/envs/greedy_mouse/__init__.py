"""GreedyMouse: the cat-mouse-cheese gridworld (see ``GreedyMouseEnv`` for the docs)."""

#: The Gymnasium id ``import smpc_gym`` registers the single-mouse env under.
ENV_ID = "GreedyMouse-v0"
