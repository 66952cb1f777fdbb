"""Studies: experiments built on the agents, above them in the layers.

* :mod:`smpc_gym.studies.pate` — PATE: tabular-Q teachers on disjoint worlds, a noisy
  vote, and a student trained only on the released labels.
* :mod:`smpc_gym.studies.attacks` — gradient inversion by the federated coordinator on
  DQN updates, per protection (none, secure aggregation, DP, robust aggregation).

Neither is an algorithm of ``train.py``; the benchmarks ``benchmarks/pate.py`` and
``benchmarks/privacy_attack.py`` run them.
"""
