"""Optuna: the tuner's ask/tell loop, cohorts, storage and interrupts."""
