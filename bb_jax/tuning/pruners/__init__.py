"""Pruners for trials that train together in batches (Optuna's pruner interface), one rule per
module, each registered by name in `registry.PRUNERS` (`--pruner NAME`, or `MODULE:CLASS` for
a pruner outside the package):

- `incumbent.IncumbentPruner` (`--pruner incumbent`; `median`'s first rule): a paired test
  against the incumbent trial on the tuning seeds, else a fallback rule.
- `median.EvidenceMedianPruner` (`--pruner median` without an incumbent): significantly
  below the peers' median, with the noise from the tuning seeds.
- `halving.SyncHalvingPruner` (`--pruner sha`): synchronous successive halving at equal steps.
- `hyperband.HyperbandPruner` (`--pruner hyperband`): Hyperband's brackets as published.
- `--pruner none`: Optuna's NopPruner.

The tuner reports every trial of a batch before it asks any of them `should_prune`, so a rule
sees the whole batch at one stage beside earlier trials; it writes each trial's per-seed values
(user attr "seed_reports") just before each report. docs/HYPERPARAMETER_TUNING.md ("Pruners")
reports each rule's behaviour on synthetic sweeps (`bb_jax.testing.synthetic_sweeps`).
"""

from bb_jax.tuning.pruners.axis import ProgressAxis, progress_axis
from bb_jax.tuning.pruners.curves import latest_at, planned_checks, value_at
from bb_jax.tuning.pruners.halving import SyncHalvingPruner, rung_steps
from bb_jax.tuning.pruners.hyperband import HyperbandPruner, bracket_cycle, bracket_sizes
from bb_jax.tuning.pruners.incumbent import IncumbentPruner
from bb_jax.tuning.pruners.median import EvidenceMedianPruner
from bb_jax.tuning.pruners.registry import PRUNERS

__all__ = ["PRUNERS", "EvidenceMedianPruner", "HyperbandPruner", "IncumbentPruner",
           "ProgressAxis", "SyncHalvingPruner", "bracket_cycle", "bracket_sizes", "latest_at",
           "planned_checks", "progress_axis", "rung_steps", "value_at"]
