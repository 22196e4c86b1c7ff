"""`forgetbench law`: load the stored pairs, fit forgetting against KL, plot, predict, print.

The command sits apart from forgetbench.kl.law (points, fits, plot) and forgetbench.kl.predict (forgetting
predicted for --target-prompts pairs), which it uses both, so neither of those imports the other back.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from forgetbench.errors import UserError
from forgetbench.kl.law import MIN_PAIRS, X_LABELS, fits, load_points, notes_for, plot, render_fits, render_points, to_json
from forgetbench.kl.predict import predict, render
from forgetbench.store import Store


def main(db: Path, out: Path | None = None, as_json: bool = False, x: str = "fwd_seq") -> int:
    """The `forgetbench law` subcommand. Raises UserError with fewer than 3 pairs with KL."""
    if x not in X_LABELS:
        raise UserError(f"--x must be one of {', '.join(X_LABELS)}, not {x!r}")
    out = Path(out) if out is not None else Path(db).with_name(Path(db).stem + "_law.png")
    if out.suffix.lower() not in (".png", ".svg"):
        raise UserError(f"--out must end in .png or .svg, not {out.name!r}")
    with Store(db, read_only=True) as s:
        points = load_points(s, x)
    n = sum(p.mean_drop is not None for p in points)
    if n < MIN_PAIRS:
        if points and not as_json:
            print(render_points(points, x))
        raise UserError(f"law needs at least {MIN_PAIRS} pairs with KL; found {n} (store {db})")
    fs, notes = fits(points), notes_for(points)
    preds = predict(points)  # pairs measured on --target-prompts: forgetting predicted from the others
    plot(points, fs, x, out)
    if as_json:
        print(json.dumps({**to_json(points, fs, x, out, notes), "predictions": [asdict(p) for p in preds]},
                         indent=2))
        return 0
    print(f"forgetting vs {X_LABELS[x]}: {n} pairs\n")
    print(render_points(points, x) + "\n")
    print(render_fits(fs, x))
    for note in notes:
        print(f"note: {note}")
    if preds:
        print("\n" + render(preds, x))
    print(f"\nplot written to {out}")
    return 0
