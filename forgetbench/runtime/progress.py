"""Progress for every long step (training, sampling, KL passes): one tqdm bar on stderr, so stdout stays
clean for `--json`. Bars refresh every second on a terminal and every 30 s in a log file;
FORGETBENCH_PROGRESS=0 turns them off. tqdm's bar shows done/total, elapsed and time left.
"""

from __future__ import annotations

import os
import sys


def bar(iterable=None, *, total: int | None = None, desc: str, unit: str = "it"):
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=tty,
                mininterval=1.0 if tty else 30.0, disable=os.environ.get("FORGETBENCH_PROGRESS") == "0")


def trainer_callback(desc: str):
    """A transformers TrainerCallback drawing a bar over optimizer steps with the last loss (and GRPO
    reward) in its postfix; pair it with removing the Trainer's PrinterCallback (per-step dicts)."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def __init__(self):
            self.bar = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.bar = bar(total=state.max_steps, desc=desc, unit="step")

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.bar is not None and logs and "loss" in logs:
                post = {"loss": f"{logs['loss']:.3f}"}
                if "reward" in logs:
                    post["reward"] = f"{logs['reward']:.3f}"
                self.bar.set_postfix(post, refresh=False)

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return Progress()


def quiet_trainer(trainer, desc: str):
    """Replace the Trainer's per-step dict printing with a progress bar; returns the trainer."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(trainer_callback(desc))
    return trainer
