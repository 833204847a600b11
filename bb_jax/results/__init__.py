"""docs/RESULTS.md: PPO on every scenario against the uniform-random policy and the heuristic
archetypes in the learner's seat. An application of the library (game, train, stats) that only
the command line (`bb_jax.cli.results`, scripts/results_report.py) imports.

- `experiment`: what trains and evaluates (`ReportSettings`, `run_report`)
- `verdicts`: the statistics: each figure's 95% interval, better / worse / tie
- `markdown`: docs/RESULTS.md's text
- `plot`: docs/results.png
- `outputs`: writes the JSON, the plot and the Markdown
"""
