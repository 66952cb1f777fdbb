#!/usr/bin/env python
"""Experiment runner: ``python train.py --algo ALGO --env ENV [...]``.

Thin wrapper around :func:`smpc_gym.training.cli.main` (also ``python -m smpc_gym`` and
the ``smpc-gym`` console script). ``python train.py --help`` lists the options;
``python train.py plot RUN...`` and ``python train.py eval RUN`` are the subcommands.
"""

import sys

from smpc_gym.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
