"""A random rollout of both PettingZoo environments (the usual ParallelEnv loop).

python examples/pettingzoo_random_rollout.py [--cycles N] [--seed S]
"""

from __future__ import annotations

import argparse

from smpc_gym import greedy_mouse_v0, supply_chain_v0


def rollout(env, seed: int, max_cycles: int) -> dict[str, float]:
    """Play uniformly random actions until the episode ends (or ``max_cycles``)."""
    observations, infos = env.reset(seed=seed)
    for agent in env.possible_agents:
        env.action_space(agent).seed(seed + env.possible_agents.index(agent))
    totals = dict.fromkeys(env.possible_agents, 0.0)
    cycles = 0
    while env.agents and cycles < max_cycles:
        actions = {agent: env.action_space(agent).sample() for agent in env.agents}
        observations, rewards, terminations, truncations, infos = env.step(actions)
        for agent, reward in rewards.items():
            totals[agent] += float(reward)
        cycles += 1
    env.close()
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    # Two-player supply chain: each player's inventory and costs are private to it.
    chain = supply_chain_v0.parallel_env()
    print("SupplyChain random rewards:", rollout(chain, args.seed, args.cycles))

    # Three mice share one grid; the cat chases the nearest one.
    mice = greedy_mouse_v0.parallel_env(num_mice=3)
    print("GreedyMouse (3 mice) random rewards:", rollout(mice, args.seed, args.cycles))


if __name__ == "__main__":
    main()
