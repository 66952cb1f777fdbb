"""GreedyMouse: the cat-mouse-cheese gridworld (see ``GreedyMouseEnv`` for the docs)."""
