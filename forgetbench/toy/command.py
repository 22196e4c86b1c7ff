"""`forgetbench toy mog | parity`: run a toy experiment, draw its figure, print its table and findings.

The experiments (mog.py, parity.py) return results; the figures (mog_plot.py, parity_plot.py) draw
them; this module is the only one that knows both, so neither experiment imports its figure.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from forgetbench.errors import UserError


def _check_out(out: Path | None) -> None:
    if out is not None and Path(out).suffix.lower() not in (".png", ".svg"):
        raise UserError(f"--out must end in .png or .svg, not {Path(out).name!r}")


def _print(header: str, table: str, findings: list[str], out: Path | None) -> int:
    print(header + "\n")
    print(table + "\n")
    for line in findings:
        print(f"- {line}")
    if out is not None:
        print(f"\nfigure written to {out}")
    return 0


def mog(steps: int = 300, lr: float = 0.05, seed: int = 0, out: Path | None = Path("toy_mog.png"),
        as_json: bool = False) -> int:
    """`forgetbench toy mog`; out=None skips the figure."""
    from forgetbench.toy import mog as toy

    _check_out(out)
    res = toy.run(steps, lr, seed)
    if out is not None:
        from forgetbench.toy.mog_plot import plot

        out = plot(res, Path(out))
    if as_json:
        print(json.dumps(toy.to_json(res, out), indent=2))
        return 0
    header = (f"mixture-of-Gaussians toy: target {toy.describe(toy.TARGET)}; {steps} steps, Adam lr {lr}, batch"
              f" {toy.BATCH}, seed {seed}\nold skill = mass on {list(toy.OLD_REGION)}, new task = mass on"
              f" {list(toy.NEW_REGION)}; gain/drop in points, KL in nats")
    return _print(header, toy.render_table(res), toy.verdict(res), out)


def parity(steps: int = 200, lrs: tuple[float, ...] | None = None, seeds: int = 2, seed: int = 0,
           out: Path | None = Path("toy_parity.png"), as_json: bool = False) -> int:
    """`forgetbench toy parity`; out=None skips the figure."""
    from forgetbench.toy import parity as tp

    _check_out(out)
    res = tp.run(steps, tp.DEFAULT_LRS if lrs is None else lrs, seeds, seed)
    if out is not None:
        from forgetbench.toy.parity_plot import plot

        out = plot(res, Path(out))
    if as_json:
        d = asdict(res)
        d.update(findings=tp.findings(res), figure=None if out is None else str(out),
                 units={"acc": "fraction of test images", "drop": "fraction", "kl": "nats per input"})
        print(json.dumps(d, indent=2))
        return 0
    header = (f"parity toy (sklearn 8x8 digits): {len(res.runs)} runs = {len(tp.METHODS)} methods x lrs "
              f"{','.join(map(str, res.lrs))} x seeds {res.seeds[0]}..{res.seeds[-1]}, {steps} steps each")
    return _print(header, tp.render(res), tp.findings(res), out)
