"""Secure multi-party computation: everything that touches CrypTen lives here.

Nothing in this package knows about environments. CrypTen itself is imported lazily
through :func:`smpc_gym.secure._crypten.crypten_module`.
"""

from smpc_gym.secure._crypten import crypten_module

__all__ = ["crypten_module"]
