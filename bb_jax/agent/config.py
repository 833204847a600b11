"""What a training run is, declared once: the static config (`PPOConfig`: shapes and loop
lengths, so a change compiles a new program), the traced hyperparameters (`PPOHyperparams`,
one row per population member, so trials that differ only in them share one compile) and the
member shapes of a shape-padded program (`ShapeChoices`, `MemberShape`).

Each tunable field carries its default, its command-line flag and its search range on the
field itself (`tunable`, a `bb_jax.config.setting`); the defaults dict, the tuner's search
space, the flags of train_simple.py and the printed training commands are derived from these
fields. This module is the leaf of `bb_jax.agent` (and of everything above it): of bb_jax it
imports only `bb_jax.config`, the declaration helpers every layer shares.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import jax.numpy as jnp
from flax import struct

from bb_jax.config import Search, Valid, setting

ADV_NORMS = ("batch", "minibatch")
CRITICS = ("shared", "separate")
LEARNER_CHOICES = ("time_input", "critic", "adv_norm")
MAX_EPOCHS = 10  # PPOConfig.max_epochs's default: the static bound of the epoch loop
MAX_TOTAL_STEPS = 2**31 - 1  # env steps per run: the device counts them in int32
CPU_NUM_ENVS = 16  # environments per member on a CPU (long rollouts over few envs)
ACCELERATOR_ROLLOUT = 16  # steps per env and update on a GPU/TPU (short rollouts, many envs)


def tunable(default, flag: str, help: str, search: Search | None = None, traced=True,
            valid: Valid | None = None):
    """A declared field (`bb_jax.config.setting`) with its default, train_simple.py flag,
    help text, search range (None: not searched) and valid range (`Valid`; None: checked by
    the config itself). `traced` fields are pytree leaves of PPOHyperparams; static ones
    belong to PPOConfig."""
    return setting(default, flag, help, search=search, valid=valid, traced=traced)


def default_num_envs(batch_size: int, backend: str) -> int:
    """Environments per member when the config does not say, on a JAX backend ("cpu", "gpu",
    "tpu"): 16 on a CPU; on an accelerator batch_size / 16 (16-step rollouts: the
    launch-bound step loop gets 16 iterations and each one batch_size / 16 envs wide).
    batch_size keeps its meaning (env steps per update)."""
    if backend == "cpu" or batch_size % ACCELERATOR_ROLLOUT:
        return CPU_NUM_ENVS
    return max(CPU_NUM_ENVS, batch_size // ACCELERATOR_ROLLOUT)


@dataclass(frozen=True)
class PPOConfig:
    """Static settings: changing any of them compiles a new program.

    batch_size: env steps per update (= num_envs x rollout length); num_envs: None derives it
    for `backend` (`default_num_envs`); backend: the JAX backend its backend-dependent
    choices are made for (the environments per member, the epoch loop), "cpu" unless
    `resolve` set the run's: a config never reads the backend itself, so the same config
    is the same program and the same figures wherever it is built; total_steps: env steps
    of the whole run, None in the configs that key shared compiled programs (which must not
    read `num_updates`);
    reward_scale multiplies rewards seen by the learner (returns are reported unscaled);
    time_input: the network also sees the episode's progress (step count / max_steps, in
    [0, 1]; the end of an episode at max_steps is then a real end, not bootstrapped);
    critic: a "separate" torso for the value head or one "shared" with the policy
    (`networks.ActorCritic`; separate learns faster, docs/PPO.md's ablation);
    adv_norm: advantages normalised over the whole "batch" or per "minibatch" (docs/PPO.md)."""

    scenario: str = "default"
    num_opponents: int = 2
    opponents: tuple[str, ...] | None = None
    max_steps: int = 50
    # chosen per second of training on a 2-core CPU by the project's tuner (docs/PPO.md,
    # "Defaults per second"): a compute-budget study over easy, default and hard
    hidden_size: int = tunable(64, "--hidden-size", "units per hidden layer",
                               Search(choices=(64, 128, 256, 512), small_choices=(64, 128)),
                               traced=False)
    batch_size: int = tunable(512, "--batch-size", "env steps per update",
                              Search(choices=(512, 1024, 2048, 4096)), traced=False)
    num_envs: int | None = setting(None, "--num-envs", "environments per seed (default: 16 on "
                                   "a CPU, batch size / 16 on a GPU/TPU)", type=int,
                                   traced=False)
    num_minibatches: int = 4
    max_epochs: int = MAX_EPOCHS
    total_steps: int | None = 500_000
    reward_scale: float = 0.01
    time_input: bool = setting(True, "--time-input", "give the network the episode's progress "
                               "(step / max steps)", action="boolean", traced=False)
    critic: str = setting("separate", "--critic", "value head on the policy's torso or on its "
                          "own", choices=CRITICS, traced=False)
    adv_norm: str = setting("batch", "--adv-norm", "normalise advantages per batch or per "
                            "minibatch", choices=ADV_NORMS, traced=False)
    # the environment (`bb_jax.envs`): the game, "gymnax:NAME" or "module:factory"; the
    # game's scenario, opponents and episode length above apply to the game only
    env: str = "bucket_brigade"
    backend: str = "cpu"

    def __post_init__(self):
        if self.critic not in CRITICS:
            raise ValueError(
                f"unknown critic {self.critic!r}; valid: {', '.join(CRITICS)}")
        if self.adv_norm not in ADV_NORMS:
            raise ValueError(
                f"unknown advantage normalisation {self.adv_norm!r}; valid: {', '.join(ADV_NORMS)}")
        object.__setattr__(self, "time_input", bool(self.time_input))
        if self.num_envs is None:
            object.__setattr__(self, "num_envs", default_num_envs(self.batch_size,
                                                                  self.backend))
        for name in ("hidden_size", "batch_size", "num_envs", "num_minibatches", "max_epochs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.batch_size % self.num_envs:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of num_envs ({self.num_envs})"
            )
        if self.batch_size % self.num_minibatches:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of num_minibatches "
                f"({self.num_minibatches})"
            )
        if self.total_steps is not None and self.total_steps < self.batch_size:
            raise ValueError(
                f"total_steps ({self.total_steps}) is smaller than one batch ({self.batch_size})"
            )
        if self.total_steps is not None and self.total_steps > MAX_TOTAL_STEPS:
            raise ValueError(f"total_steps ({self.total_steps}) is above {MAX_TOTAL_STEPS:,}, "
                             "the most env steps a run counts (int32)")
        if self.opponents is not None:
            object.__setattr__(self, "opponents", tuple(self.opponents))

    @property
    def static_epochs(self) -> bool:
        """The epoch loop `PPO` compiles for `backend`: static with a mask on an accelerator
        (True), a traced count on a CPU (False)."""
        return self.backend != "cpu"

    @property
    def rollout_length(self) -> int:
        """Steps each environment takes per update."""
        return self.batch_size // self.num_envs

    @property
    def num_updates(self) -> int:
        if self.total_steps is None:
            raise ValueError("this config keys a shared compiled program (total_steps=None): "
                             "the number of updates is the caller's loop, not the config's")
        return self.total_steps // self.batch_size

    @property
    def learner_choices(self) -> dict:
        """{time_input, critic, adv_norm}: the learner's choices, recorded with a run or study
        (results from different choices are not comparable)."""
        return {name: getattr(self, name) for name in LEARNER_CHOICES}

    def replace(self, **changes) -> PPOConfig:
        """A copy with `changes` (dataclasses.replace: the checks of __post_init__ run)."""
        return dataclasses.replace(self, **changes)


def resolve(config: PPOConfig, backend: str, num_envs: int | None = None) -> PPOConfig:
    """`config` for a run on the JAX backend `backend` (`jax.default_backend()`, read once by
    the entry point that starts the run): its backend-dependent choices made for it and
    stored in it, the environments per member `num_envs` (None: `default_num_envs` of its
    batch) and the epoch loop (`PPOConfig.static_epochs`)."""
    return config.replace(backend=backend, num_envs=num_envs)


@struct.dataclass
class PPOHyperparams:
    """Traced hyperparameters: float32 scalars (num_epochs int32, at most max_epochs), or
    arrays with a leading population axis. The defaults (with PPOConfig's hidden 64 and batch
    512) are the best trial of the project's own tuner at a compute budget, rounded to two
    digits: a study over easy, default and hard at the FLOPs the previous defaults spent in
    about 250k env steps, validated on fresh seeds at equal FLOPs and at equal seconds
    (docs/PPO.md, "Defaults per second")."""

    learning_rate: jnp.ndarray = tunable(5.6e-4, "--lr", "Adam step size",
                                         Search(low=1e-5, high=1e-3, log=True),
                                         valid=Valid(0, 1))
    clip_epsilon: jnp.ndarray = tunable(0.27, "--clip-epsilon", "PPO's ratio clip",
                                        Search(low=0.1, high=0.3),
                                        valid=Valid(0, 1, low_open=True, high_open=True))
    entropy_coef: jnp.ndarray = tunable(0.026, "--entropy-coef", "weight of the entropy bonus",
                                        Search(low=0.001, high=0.05, log=True),
                                        valid=Valid(0, 1))
    value_coef: jnp.ndarray = tunable(0.31, "--value-coef", "weight of the value loss",
                                      Search(low=0.3, high=0.7), valid=Valid(0, 100))
    gamma: jnp.ndarray = tunable(0.955, "--gamma", "discount per night",
                                 Search(low=0.95, high=0.999), valid=Valid(0, 1))
    gae_lambda: jnp.ndarray = tunable(0.966, "--gae-lambda", "GAE's lambda",
                                      Search(low=0.9, high=0.99), valid=Valid(0, 1))
    max_grad_norm: jnp.ndarray = tunable(0.5, "--max-grad-norm",
                                         "global gradient-norm clip (not searched)",
                                         valid=Valid(0, 1e6, low_open=True))
    num_epochs: jnp.ndarray = tunable(5, "--num-epochs", "passes over each batch (<= max_epochs)",
                                      Search(low=3, high=10, integer=True),
                                      valid=Valid(1, MAX_EPOCHS, integer=True))


# the fields train_simple.py has a flag for (its parser is generated from them)
TUNABLE_FIELDS = tuple(f for cls in (PPOConfig, PPOHyperparams)
                       for f in dataclasses.fields(cls) if f.metadata.get("flag"))
DEFAULT_HYPERPARAMS = {f.name: f.default for f in dataclasses.fields(PPOHyperparams)}
HYPERPARAM_NAMES = tuple(DEFAULT_HYPERPARAMS)
VALID = {f.name: f.metadata["valid"] for f in dataclasses.fields(PPOHyperparams)}


def check_hyperparams(values: dict, max_epochs: int = MAX_EPOCHS) -> None:
    """Raise ValueError (one line naming the field, its flag and its valid range) for the
    first value of `values` ({name: value}, a subset of the hyperparameters) outside its
    declared range (`Valid`), or num_epochs above `max_epochs` (the config's epoch loop)."""
    flags = {f.name: f.metadata["flag"] for f in dataclasses.fields(PPOHyperparams)}
    for name, value in values.items():
        valid = VALID[name]
        if name == "num_epochs":
            valid = dataclasses.replace(valid, high=min(valid.high, max_epochs))
        if not valid.contains(value):
            raise ValueError(f"{name} ({flags[name]}) must be in {valid}, got {value!r}")


def make_hyperparams(**values) -> PPOHyperparams:
    """Defaults overridden by `values`; each value a scalar or an array with a population axis."""
    unknown = set(values) - set(HYPERPARAM_NAMES)
    if unknown:
        raise ValueError(
            f"unknown hyperparameters {sorted(unknown)}; valid: {', '.join(HYPERPARAM_NAMES)}"
        )
    merged = {**DEFAULT_HYPERPARAMS, **values}
    return PPOHyperparams(
        **{
            k: jnp.asarray(v, jnp.int32 if isinstance(DEFAULT_HYPERPARAMS[k], int) else
                           jnp.float32)
            for k, v in merged.items()
        }
    )


def stack_hyperparams(rows: list[dict]) -> PPOHyperparams:
    """One PPOHyperparams with a leading population axis from a list of dicts."""
    return make_hyperparams(
        **{k: [row.get(k, DEFAULT_HYPERPARAMS[k]) for row in rows] for k in HYPERPARAM_NAMES}
    )


@struct.dataclass
class MemberShape:
    """A member's own shape inside a shape-padded program (int32 scalars; a leading population
    axis in a population): the hidden units it uses and its env steps per update."""

    hidden_size: jnp.ndarray
    batch_size: jnp.ndarray


@dataclass(frozen=True)
class ShapeChoices:
    """The shapes one padded program serves (`PPO.shapes`): members with any of these hidden
    sizes and batch sizes train together in a program of the largest ones (docs/PERFORMANCE.md,
    "One program per batch")."""

    hidden_sizes: tuple[int, ...]
    batch_sizes: tuple[int, ...]

    def config(self, base: PPOConfig) -> PPOConfig:
        """The padded program's static config: the largest shapes and the largest batch's
        environments (`default_num_envs`). A member's own environments and rollout length
        (those of its batch, as in its exact program) are a corner of the program's, which
        the program masks: on a CPU its rollout is shorter, on an accelerator it has fewer
        environments."""
        return base.replace(hidden_size=max(self.hidden_sizes), batch_size=max(self.batch_sizes),
                            num_envs=default_num_envs(max(self.batch_sizes), base.backend))

    def member(self, hidden_size: int, batch_size: int) -> MemberShape:
        if hidden_size not in self.hidden_sizes or batch_size not in self.batch_sizes:
            raise ValueError(f"shape (hidden {hidden_size}, batch {batch_size}) is not among "
                             f"hidden {self.hidden_sizes} x batch {self.batch_sizes}")
        return MemberShape(jnp.int32(hidden_size), jnp.int32(batch_size))
