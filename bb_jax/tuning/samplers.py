"""`--sampler NAME` or `--sampler MODULE:CLASS`: the registry of the tuner's samplers. Each
registers a factory `(settings, seed, incumbent) -> optuna.samplers.BaseSampler`: `seed` is
the one the study derives from --seed (`sampler_seed`), `incumbent` the parameters of the
study's incumbent trial (None without one). A class named MODULE:CLASS is built by
`Class.from_settings(settings, seed, incumbent)` when it defines that classmethod, else by
`Class(seed=seed)` (every Optuna sampler takes a seed)."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import optuna

from bb_jax.tuning.registry import ChoiceError, Registry
from bb_jax.tuning.settings import TuneSettings

SamplerFactory = Callable[[TuneSettings, int, dict | None], optuna.samplers.BaseSampler]


def sampler_factory(spec: str, found: object) -> SamplerFactory:
    """A user's sampler class (an optuna BaseSampler subclass) as a factory of the registry."""
    if not (isinstance(found, type) and issubclass(found, optuna.samplers.BaseSampler)):
        raise ChoiceError(f"--sampler {spec!r} is not a subclass of optuna.samplers.BaseSampler")
    if hasattr(found, "from_settings"):
        return found.from_settings
    return lambda settings, seed, incumbent: found(seed=seed)


SAMPLERS = Registry("--sampler", "samplers", "mypackage.search:MySampler", sampler_factory)


def sampler_seed(settings: TuneSettings, n_existing: int) -> int:
    """The sampler's seed, from --seed, the worker and the `n_existing` trials already in the
    study (a resumed study does not replay the random start of its first run)."""
    return (settings.seed * 1_000_003 + settings.worker_index * 7_919 + n_existing) % 2**31


@SAMPLERS.register("tpe")
def tpe_sampler(settings: TuneSettings, seed: int,
                incumbent: dict | None) -> optuna.samplers.TPESampler:
    """Multivariate TPE with the constant liar: the batch design relies on both (joint
    sampling, and running trials as liars); a conditional space samples each group of
    parameters that occur together jointly."""
    if not settings.search_space().conditional:
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    with warnings.catch_warnings():  # group is experimental in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True,
                                          group=True)


@SAMPLERS.register("gp", package="torch")
def gp_sampler(settings: TuneSettings, seed: int,
               incumbent: dict | None) -> optuna.samplers.GPSampler:
    """Optuna's Gaussian-process sampler."""
    return optuna.samplers.GPSampler(seed=seed)


# --sampler cmaes: the first generation's spread, in units of each parameter's range (log
# ranges in log space); Optuna's default is a sixth around the middle of the box, this keeps
# the search near the incumbent it starts from
CMA_SIGMA0 = 0.1


@SAMPLERS.register("cmaes", package="cmaes")
def cmaes_sampler(settings: TuneSettings, seed: int,
                  incumbent: dict | None) -> optuna.samplers.CmaEsSampler:
    """CMA-ES started at the incumbent (None: the middle of the space)."""
    with warnings.catch_warnings():  # x0 and sigma0 are deprecated (still in Optuna 5)
        warnings.simplefilter("ignore", FutureWarning)
        return optuna.samplers.CmaEsSampler(
            x0=incumbent, sigma0=CMA_SIGMA0 if incumbent else None, seed=seed,
            warn_independent_sampling=False)


@SAMPLERS.register("random")
def random_sampler(settings: TuneSettings, seed: int,
                   incumbent: dict | None) -> optuna.samplers.RandomSampler:
    """Independent uniform draws (log-uniform on log ranges)."""
    return optuna.samplers.RandomSampler(seed=seed)
