"""Figure for `forgetbench toy parity`: new-task vs old-task accuracy per run, and forgetting (drop on the
old task) against forward KL(pi0 || pi) on the new task's inputs with the least-squares line and R²."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from forgetbench.errors import UserError
from forgetbench.toy.parity import ParityResult

COLORS = {"sft-single": "tab:red", "sft-uniform": "tab:orange", "sft-oracle": "tab:green", "rl": "tab:blue"}


def plot(res: ParityResult, out: Path) -> Path:
    try:
        import matplotlib
    except ImportError as e:
        raise UserError("the toy figure needs matplotlib: pip install 'forgetbench[plot]' (or pass no --out)") from e
    matplotlib.use("Agg")  # no display here; must precede pyplot's import
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    for m in res.means:  # forgetbench.toy.parity.METHODS, in order
        rs = [r for r in res.runs if r.method == m]
        a1.scatter([100 * r.new_acc for r in rs], [100 * r.old_acc for r in rs], color=COLORS[m], s=28, label=m)
        a2.scatter([r.kl for r in rs], [100 * r.drop for r in rs], color=COLORS[m], s=28, label=m)
    a1.plot(100 * res.base_new_acc, 100 * res.base_old_acc, "k*", ms=13, label="base π0")
    a1.set_xlabel("new task: parity accuracy (%)")
    a1.set_ylabel("old task: rotated-digit accuracy (%)")
    a1.set_title("new-task vs old-task accuracy, one point per run")
    a1.legend(fontsize=8)
    x = np.linspace(0, max(r.kl for r in res.runs) * 1.05, 50)
    f = res.fit
    if f is not None:
        r2 = "n/a" if f.r2 is None else f"{f.r2:.2f}"
        a2.plot(x, 100 * (f.slope * x + f.intercept), "k--", lw=1,
                label=f"least squares: drop = {100 * f.slope:.2f}·KL {100 * f.intercept:+.1f}, R² = {r2}")
    a2.axhline(0, color="0.5", lw=0.6)
    a2.set_xscale("symlog", linthresh=1.0)  # sft-single's KL is an order of magnitude beyond the others
    a2.set_xlim(left=0)
    a2.set_xlabel("KL(π0 ‖ π) on the new task's test inputs (nats, symlog)")
    a2.set_ylabel("forgetting: old-task accuracy drop (points)")
    a2.set_title("forgetting vs forward KL")
    a2.legend(fontsize=8)
    fig.suptitle(f"Parity toy (RL's Razor) on sklearn 8x8 digits — {len(res.runs)} runs, {res.steps} steps, "
                 f"Adam lrs {', '.join(map(str, res.lrs))}, seeds {res.seeds[0]}..{res.seeds[-1]}", fontsize=11)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format=out.suffix.lower().lstrip("."), dpi=110)
    plt.close(fig)
    return out
