"""``python -m smpc_gym``: the same CLI as ``train.py`` (see :mod:`smpc_gym.training.cli`)."""

import sys

from smpc_gym.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
