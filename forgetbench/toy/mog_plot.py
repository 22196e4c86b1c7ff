"""Figure for `forgetbench toy mog`: one row per initial policy; columns = final densities vs the target,
gain and drop over training, and drop against gain (the matched-gain comparison)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from forgetbench.errors import UserError
from forgetbench.toy.mog import METHOD_LABELS, METHODS, NEW_REGION, OLD_REGION, ToyResult

COLORS = {"forward-KL": "tab:orange", "reverse-KL": "tab:blue"}


def plot(res: ToyResult, out: Path) -> Path:
    try:
        import matplotlib
    except ImportError as e:
        raise UserError("the toy figure needs matplotlib: pip install 'forgetbench[plot]' (or pass no --out)") from e
    matplotlib.use("Agg")  # no display here; must precede pyplot's import
    import matplotlib.pyplot as plt

    inits = list(res.inits)
    fig, axes = plt.subplots(len(inits), 3, figsize=(15, 4.2 * len(inits)), layout="constrained", squeeze=False)
    x = np.linspace(-8, 8, 801)
    for row, init in zip(axes, inits):
        ax = row[0]
        ax.fill_between(x, np.exp(res.target.logpdf(x)), color="0.8", label="target p*")
        for m in METHODS:
            r = res.run(init, m)
            ax.plot(x, np.exp(r.final.logpdf(x)), color=COLORS[m], lw=1.8,
                    label=f"{METHOD_LABELS[m]}, step {res.steps}")
            if r.match_policy is not None:
                ax.plot(x, np.exp(r.match_policy.logpdf(x)), color=COLORS[m], lw=1.1, ls=":",
                        label=f"… at gain g* (step {r.match_step})")
        ax.plot(x, np.exp(res.inits[init].logpdf(x)), "k--", lw=1.1, label="initial π0", zorder=5)
        for (lo, hi), name in ((OLD_REGION, "old skill"), (NEW_REGION, "new task")):
            ax.axvspan(lo, hi, color="tab:green" if name == "old skill" else "tab:purple", alpha=0.07)
            ax.text((lo + hi) / 2, 0.98, name, transform=ax.get_xaxis_transform(), ha="center", va="top", fontsize=8)
        ax.set_title(f"{init} π0: densities")
        ax.set_xlabel("x")
        ax.set_ylabel("density")
        ax.legend(fontsize=7, loc="center left", framealpha=0.6)

        ax = row[1]
        for m in METHODS:
            r = res.run(init, m)
            ax.plot(r.steps, 100 * np.array(r.gain), color=COLORS[m], lw=1.6, label=f"gain, {METHOD_LABELS[m]}")
            ax.plot(r.steps, 100 * np.array(r.drop), color=COLORS[m], lw=1.6, ls="--",
                    label=f"drop, {METHOD_LABELS[m]}")
        ax.axhline(0, color="0.5", lw=0.6)
        ax.set_title(f"{init} π0: gain on the new task, drop on the old skill")
        ax.set_xlabel("training step")
        ax.set_ylabel("points (x100 probability mass)")
        ax.legend(fontsize=7)

        ax = row[2]
        for m in METHODS:
            r = res.run(init, m)
            ax.plot(100 * np.array(r.gain), 100 * np.array(r.drop), color=COLORS[m], lw=1.2, alpha=0.8,
                    label=METHOD_LABELS[m])
            ax.plot(100 * r.gain[-1], 100 * r.drop[-1], "o", color=COLORS[m], ms=5)
            if r.match_drop is not None:
                ax.plot(100 * r.matched_gain, 100 * r.match_drop, "*", color=COLORS[m], ms=12, mec="k", mew=0.5)
        g_star = 100 * res.run(init, METHODS[0]).matched_gain
        ax.axvline(g_star, color="0.4", ls=":", lw=1, label=f"matched gain g* = {g_star:.1f} (★)")
        ax.axhline(0, color="0.5", lw=0.6)
        ax.set_title(f"{init} π0: drop vs gain over training (● = end)")
        ax.set_xlabel("gain (points)")
        ax.set_ylabel("drop (points)")
        ax.legend(fontsize=7)
    fig.suptitle("Mixture-of-Gaussians toy (Retaining by Doing): SFT-like forward KL vs RL-like reverse KL "
                 f"— {res.steps} steps, Adam lr {res.lr}, batch {res.batch}, seed {res.seed}", fontsize=11)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format=out.suffix.lower().lstrip("."), dpi=110)
    plt.close(fig)
    return out
