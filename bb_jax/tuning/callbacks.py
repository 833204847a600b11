"""The tuner's callbacks named on the command line, so that `--n-jobs` workers (separate
processes, which get the tuner's command line) build the same ones: `--callback MODULE:NAME`
imports any Optuna callback `(study, frozen_trial)`, `--mlflow-uri URI` attaches
optuna-integration's MLflowCallback (one MLflow run per told trial, experiment = study name).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

from bb_jax.tuning.registry import ChoiceError, import_named


class CallbackError(ChoiceError):
    """A --callback or --mlflow-uri that cannot be used (one line for the command line)."""


def import_callback(spec: str) -> Callable:
    """The callable that "package.module:name" names (raises ChoiceError)."""
    return import_named(spec, "--callback", "mypackage.hooks:notify")


def check_mlflow() -> None:
    try:
        import mlflow  # noqa: F401
        import optuna_integration  # noqa: F401
    except ImportError:
        raise CallbackError("--mlflow-uri needs mlflow and optuna-integration: pip install "
                            "'bb-jax[mlflow]'") from None


def mlflow_callback(uri: str, study_name: str, metric_names: list[str]) -> Callable:
    """optuna-integration's MLflowCallback logging to `uri`. Its experiment is created here,
    once, by the process that starts the workers (each worker creating it at its first
    trial would race)."""
    from mlflow import MlflowClient
    from optuna_integration import MLflowCallback

    client = MlflowClient(uri)
    if client.get_experiment_by_name(study_name) is None:
        client.create_experiment(study_name)
    with warnings.catch_warnings():
        # optuna-integration 4.9 marked it deprecated (removal in 6.0, which the project's
        # version range excludes); the warning is about our choice, not the user's
        warnings.filterwarnings("ignore", "MLflowCallback has been deprecated",
                                FutureWarning)
        return MLflowCallback(tracking_uri=uri, metric_name=metric_names)


def tuner_callbacks(specs: tuple[str, ...], mlflow_uri: str | None, study_name: str,
                    metric_names: list[str]) -> list[Callable]:
    """The callbacks of --callback (in their order), then MLflow's with --mlflow-uri."""
    callbacks = [import_callback(spec) for spec in specs]
    if mlflow_uri is not None:
        check_mlflow()
        callbacks.append(mlflow_callback(mlflow_uri, study_name, metric_names))
    return callbacks
