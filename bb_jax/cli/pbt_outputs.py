"""The picture `--strategy pbt` leaves beside its study: every member's lineage over env
steps (`lineage_plot`)."""

from __future__ import annotations

from pathlib import Path


def lineage_plot(run, batch_size: int, path: Path) -> None:
    """Every member's schedule of each searched hyperparameter over env steps (the values
    its final weights trained under) and its fresh-episode means at the exploit steps,
    coloured by the lineage (root member) its final weights came from."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bb_jax.tuning.pbt import SEARCHED

    names = list(SEARCHED)
    columns = 2
    panels = len(names) + 1
    fig, axes = plt.subplots((panels + columns - 1) // columns, columns,
                             figsize=(11, 2.4 * ((panels + 1) // columns)), sharex=True,
                             squeeze=False)
    axes = axes.ravel()
    colours = plt.get_cmap("tab20")
    end = len(next(iter(run.curves.values()))[0]) * batch_size
    for i, lineage in enumerate(run.lineages):
        colour = colours(lineage.root % 20)
        steps = [u * batch_size for u, _ in lineage.history] + [end]
        for ax, name in zip(axes, names, strict=False):
            values = [row[name] for _, row in lineage.history]
            ax.step(steps, [*values, values[-1]], where="post", color=colour, alpha=0.8)
        axes[len(names)].plot([u * batch_size for u in run.exploit_updates],
                              lineage.evaluations, marker="o", color=colour, alpha=0.8,
                              label=f"member {i}")
    for ax, name in zip(axes, names, strict=False):
        ax.set_ylabel(name.replace("_", " "), fontsize=8)
        if SEARCHED[name].log:
            ax.set_yscale("log")
    axes[len(names)].set_ylabel("fresh-episode mean", fontsize=8)
    for ax in axes[panels:]:
        ax.set_visible(False)
    for ax in axes[panels - columns:panels]:
        ax.set_xlabel("env steps per member")
        ax.xaxis.set_tick_params(labelbottom=True)
    fig.suptitle("PBT lineages (colour: the member a lineage began with)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
