"""Oracles and synthetic benchmarks support: nothing in the rest of bb_jax imports it.

`reference_game` is an independent plain-Python reference of the game, the oracle of the
parity tests and the per-step loop of the CPU benchmarks; `synthetic_sweeps` runs the pruners
through real Optuna studies on planted qualities plus noise (tests/test_pruners.py,
benchmarks/pruner_noise.py). Both may import the library; the library never imports them
(tests/test_layout.py).
"""
