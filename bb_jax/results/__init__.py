"""docs/RESULTS.md: PPO on every scenario against the uniform-random policy and the heuristic
archetypes in the learner's seat (scripts/results_report.py)."""
