"""Learning: networks, PPO, populations, multi-seed runs, baselines, the results report, memory."""
