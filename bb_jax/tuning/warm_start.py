"""Warm start from another study (`--warm-start-from STUDY[@STORAGE]`): a new study first
tries the source's best configurations, and its sampler sees the source's finished trials.

The source's configurations are queued (they train in this study, on its seeds): first those
its validation found better than the default configuration (best validated mean first), then
its best complete trials by tuning value, `WARM_START_TOP` in all. Its complete trials whose
parameters fit this study's space are added as finished trials ("copies", user attr
`copied_trial`): TPE counts them like any finished trial when it splits the trials into good
and bad and fits its densities, so they shape its first proposals. Their values were measured
in the source study (its scenarios, budget and seeds), so nothing else of this study takes
them for its own: validation and the best trial leave copies out (`copied`), and pruners,
which compare intermediate values, never see them (a copy has none).
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from bb_jax.tuning.space import SearchSpace, is_control
from bb_jax.tuning.storage import make_storage, redact

WARM_START_TOP = 3  # configurations queued from the source study


def parse_source(text: str, storage: str | None) -> tuple[str, str]:
    """(study name, storage URL) of STUDY[@STORAGE]; the storage defaults to `storage`
    (this study's). Raises ValueError when neither names one."""
    name, sep, url = text.partition("@")
    url = url if sep else storage
    if not name or not url:
        raise ValueError(f"--warm-start-from {redact(text)!r}: give STUDY@STORAGE (this study "
                         "has no --storage to find it in)")
    return name, url


def load_source(text: str, storage: str | None) -> optuna.Study:
    """The source study (ValueError naming it when it does not exist)."""
    name, url = parse_source(text, storage)
    try:
        return optuna.load_study(study_name=name, storage=make_storage(url, None))
    except KeyError:
        raise ValueError(f"--warm-start-from: no study {name!r} in {redact(url)}") from None


def copied(trial: FrozenTrial) -> bool:
    """Whether a trial is a copy of another study's (its value was not measured here)."""
    return "copied_trial" in trial.user_attrs


def best_configurations(source: optuna.Study, space: SearchSpace) -> list[tuple[int, dict]]:
    """(source trial number, params) of the source's best configurations that fit `space`:
    its validated winners over the control (after its multiplicity correction), best first,
    then its best complete trials; never the control's own configuration, which the new
    study's incumbent already is."""
    rows = (source.user_attrs.get("validation") or {}).get("rows", [])
    winners = sorted((r for r in rows if _beats_control(r.get("vs_control", {}))),
                     key=lambda r: -r["mean"])
    picks = [(int(r["trial"]), dict(r["params"])) for r in winners]
    complete = [t for t in source.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if not copied(t)]
    complete.sort(key=lambda t: t.values[0], reverse=True)
    picks += [(t.number, dict(t.params)) for t in complete]
    out, seen = [], []
    for number, params in picks:
        if (params not in seen and not is_control(params)
                and space.walk(params, fit=False)[1] is None):
            seen.append(params)
            out.append((number, params))
    return out[:WARM_START_TOP]


def _beats_control(comparison: dict) -> bool:
    """A validated row's verdict: `beats_control` (Holm-corrected) where the source stored
    one, else its raw paired interval above zero (validations stored before the correction)."""
    if "beats_control" in comparison:
        return bool(comparison["beats_control"])
    return bool(comparison.get("significant")) and comparison.get("mean", 0) > 0


def warm_start(study: optuna.Study, source: optuna.Study, space: SearchSpace,
               label: str) -> None:
    """Queue the source's best configurations and add its fitting complete trials as
    finished ones (single-objective studies only), each marked "warm_start_from": label."""
    for number, params in best_configurations(source, space):
        study.enqueue_trial(params, user_attrs={"warm_start_from": label,
                                                "source_trial": number})
    if len(study.directions) > 1 or len(source.directions) > 1:
        return
    copies = []
    for trial in source.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        params, problem = space.walk(trial.params, fit=False)
        if problem is not None or set(trial.params) != set(params):
            continue
        distributions, before = {}, {}
        for name, value in params.items():
            distributions[name] = space.distribution(name, before)
            before[name] = value
        copies.append(optuna.trial.create_trial(
            params=params, distributions=distributions, value=trial.values[0],
            user_attrs={"warm_start_from": label, "copied_trial": trial.number}))
    study.add_trials(copies)
