"""`forgetbench toy parity`: the parity experiment of RL's Razor (Shenfeld, Pari & Agrawal, 2025) at CPU scale.

A small classifier is pretrained on an old task, then trained on a new task whose correct outputs form a
set, and we ask whether forward KL(pi0 || pi) on the new task's inputs predicts how much of the old task
is forgotten, across training methods.

Data (substitution): the paper uses MNIST (new task, ParityMNIST) and Fashion-MNIST (old task). Neither
ships in an installable package here (no internet), so this uses scikit-learn's bundled 8x8 digits
(`sklearn.datasets.load_digits`, 1,797 images, offline). A shuffled (fixed seed) half A of the images
makes the old task, the other half B the new task, so no image is in both:
- old task: 10-way classification of the digit in images of half A ROTATED by 90 degrees (a second image
  distribution on the same 10-way head, standing in for Fashion-MNIST); 600 train / rest test.
- new task: parity on UPRIGHT images of half B: any digit of the true digit's parity is correct;
  60 pre-training images / 538 train / 300 test.
The base pi0 (MLP 64-64-10, ReLU) is pretrained on the old task's train images plus the 60 upright
images with their digit labels, so it starts with some, not full, skill on the new task (as in the
paper, where pretraining saw both datasets).

Methods (all from the same pi0, Adam, minibatch 64, the same lr and step grid):
- sft-single: cross-entropy towards one class of the right parity (0 for even digits, 1 for odd).
- sft-uniform: towards the uniform distribution over the five correct digits.
- sft-oracle: towards pi0 restricted to the correct set and renormalised, fixed from pi0 per input: of
  all distributions on the correct set it is the closest to pi0 in KL(q || pi0) (= -log pi0(correct)).
- rl: REINFORCE with the parity reward (sample a digit from pi, reward 1 if its parity is right),
  baseline = the minibatch's mean reward.
Scores are greedy (argmax) accuracies on held-out test images; drop = old acc(pi0) - old acc(pi);
KL = mean over the new task's test inputs of KL(pi0(.|x) || pi(.|x)), nats. Fit: least-squares line of
drop on KL over all runs, with R².
Simplifications: numpy with hand-written gradients (no torch); one base model per --seed; a run's seed
sets its minibatch order and RL samples; no early stopping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forgetbench.errors import UserError
from forgetbench.stats.fit import LineFit, line_fit

METHODS = ("sft-single", "sft-uniform", "sft-oracle", "rl")
DATA_SEED = 0  # the split is fixed, so runs with different --seed see the same data
HIDDEN, BATCH, PRETRAIN_STEPS, PRETRAIN_LR = 64, 64, 400, 0.01
N_OLD_TRAIN, N_PRE, N_NEW_TEST = 600, 60, 300
DEFAULT_LRS = (0.001, 0.003, 0.01)
EVEN = np.arange(10) % 2 == 0


@dataclass(frozen=True)
class Data:
    old_train: tuple[np.ndarray, np.ndarray]
    old_test: tuple[np.ndarray, np.ndarray]
    pre: tuple[np.ndarray, np.ndarray]
    new_train: tuple[np.ndarray, np.ndarray]
    new_test: tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Run:
    method: str
    lr: float
    steps: int
    seed: int
    new_acc: float
    old_acc: float
    drop: float  # old acc(pi0) - old acc(pi)
    kl: float  # mean KL(pi0 || pi) on the new task's test inputs, nats


@dataclass(frozen=True)
class ParityResult:
    steps: int
    lrs: tuple[float, ...]
    seeds: tuple[int, ...]
    base_new_acc: float
    base_old_acc: float
    runs: tuple[Run, ...]
    fit: LineFit | None  # drop against KL over the runs (None: every run has the same KL)
    rank_corr: float  # Spearman correlation of drop and KL over the runs (the line is dominated by sft-single)
    means: dict[str, dict[str, float]]  # per method: mean new_acc, old_acc, drop, kl


def load_data() -> Data:
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise UserError("toy parity needs scikit-learn: pip install 'forgetbench[toy]'") from e
    d = load_digits()
    x, y = d.images.astype(np.float64) / 16.0, d.target.astype(np.int64)
    idx = np.random.default_rng(DATA_SEED).permutation(len(y))
    a, b = idx[: len(y) // 2], idx[len(y) // 2:]
    old_x = np.rot90(x[a], k=1, axes=(1, 2)).reshape(len(a), -1)
    new_x = x[b].reshape(len(b), -1)
    split = lambda xs, ys, lo, hi: (xs[lo:hi], ys[lo:hi])  # noqa: E731
    nb = len(b)
    return Data(split(old_x, y[a], 0, N_OLD_TRAIN), split(old_x, y[a], N_OLD_TRAIN, len(a)),
                split(new_x, y[b], 0, N_PRE), split(new_x, y[b], N_PRE, nb - N_NEW_TEST),
                split(new_x, y[b], nb - N_NEW_TEST, nb))


def _init(rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.normal(0, 1 / 8, (64, HIDDEN)), np.zeros(HIDDEN), rng.normal(0, HIDDEN ** -0.5, (HIDDEN, 10)), np.zeros(10)]


def _forward(w, x):
    h = np.maximum(x @ w[0] + w[1], 0.0)
    z = h @ w[2] + w[3]
    z = z - z.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return h, logp


def log_probs(w, x) -> np.ndarray:
    return _forward(w, x)[1]


def _backward(w, x, h, dz):
    """Gradients of sum(dz * logits)/n wrt the weights (dz = dLoss/dlogits per example)."""
    n = len(x)
    dh = (dz @ w[2].T) * (h > 0)
    return [x.T @ dh / n, dh.mean(0), h.T @ dz / n, dz.mean(0)]


class _Adam:
    def __init__(self, w, lr):
        self.lr, self.t = lr, 0
        self.m, self.v = [np.zeros_like(p) for p in w], [np.zeros_like(p) for p in w]

    def step(self, w, g):
        self.t += 1
        for i, gi in enumerate(g):
            self.m[i] = 0.9 * self.m[i] + 0.1 * gi
            self.v[i] = 0.999 * self.v[i] + 0.001 * gi * gi
            mh, vh = self.m[i] / (1 - 0.9 ** self.t), self.v[i] / (1 - 0.999 ** self.t)
            w[i] = w[i] - self.lr * mh / (np.sqrt(vh) + 1e-8)


def correct_mask(y: np.ndarray) -> np.ndarray:
    """[n, 10] booleans: digits with the same parity as the true digit."""
    return EVEN[None, :] == (y % 2 == 0)[:, None]


def targets(method: str, y: np.ndarray, logp0: np.ndarray) -> np.ndarray:
    """The SFT label distribution per input ([n, 10], rows sum to one)."""
    mask = correct_mask(y)
    if method == "sft-single":
        return np.eye(10)[y % 2]  # 0 for even digits, 1 for odd ones
    if method == "sft-uniform":
        return mask / mask.sum(1, keepdims=True)
    if method == "sft-oracle":
        q = np.exp(logp0) * mask
        return q / q.sum(1, keepdims=True)
    raise ValueError(method)


def pretrain(data: Data, seed: int) -> list[np.ndarray]:
    x = np.concatenate([data.old_train[0], data.pre[0]])
    y = np.concatenate([data.old_train[1], data.pre[1]])
    w = _init(np.random.default_rng([seed, 0]))
    opt = _Adam(w, PRETRAIN_LR)
    for _ in range(PRETRAIN_STEPS):  # full batch: pretraining is deterministic given the init
        h, logp = _forward(w, x)
        opt.step(w, _backward(w, x, h, np.exp(logp) - np.eye(10)[y]))
    return w


def accuracy(w, xy, parity: bool) -> float:
    x, y = xy
    pred = log_probs(w, x).argmax(1)
    return float(np.mean(pred % 2 == y % 2) if parity else np.mean(pred == y))


def mean_kl(w0, w, x) -> float:
    lp0, lp = log_probs(w0, x), log_probs(w, x)
    return float(np.mean((np.exp(lp0) * (lp0 - lp)).sum(1)))


def finetune(w0, data: Data, method: str, lr: float, steps: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng([seed, 1 + METHODS.index(method)])
    x_all, y_all = data.new_train
    q_all = None if method == "rl" else targets(method, y_all, log_probs(w0, x_all))
    w = [p.copy() for p in w0]
    opt = _Adam(w, lr)
    for _ in range(steps):
        i = rng.choice(len(y_all), BATCH, replace=False)
        x, y = x_all[i], y_all[i]
        h, logp = _forward(w, x)
        p = np.exp(logp)
        if method == "rl":  # minimise -E[A * log pi(a)]; d/dlogits = -A * (onehot(a) - p)
            a = (p.cumsum(1) > rng.random((len(y), 1))).argmax(1)
            r = (a % 2 == y % 2).astype(float)
            dz = -(r - r.mean())[:, None] * (np.eye(10)[a] - p)
        else:  # cross-entropy towards q: d/dlogits = p - q
            dz = p - q_all[i]
        opt.step(w, _backward(w, x, h, dz))
    return w


def run(steps: int = 200, lrs: tuple[float, ...] = DEFAULT_LRS, seeds: int = 2, seed: int = 0) -> ParityResult:
    """len(METHODS) x len(lrs) x seeds runs from one base model pretrained with `seed`."""
    if steps < 1:
        raise UserError(f"--steps must be at least 1, got {steps}")
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    if not lrs or any(not (0 < lr <= 1) for lr in lrs):
        raise UserError(f"--lrs must be numbers in (0, 1], got {','.join(map(str, lrs)) or 'none'}")
    data = load_data()
    w0 = pretrain(data, seed)
    base_old, base_new = accuracy(w0, data.old_test, False), accuracy(w0, data.new_test, True)
    runs = []
    for method in METHODS:
        for lr in lrs:
            for s in range(seed, seed + seeds):
                w = finetune(w0, data, method, lr, steps, s)
                old = accuracy(w, data.old_test, False)
                runs.append(Run(method, lr, steps, s, accuracy(w, data.new_test, True), old, base_old - old,
                                mean_kl(w0, w, data.new_test[0])))
    kl, drop = np.array([r.kl for r in runs]), np.array([r.drop for r in runs])
    fit = line_fit(kl, drop)
    rank = lambda v: np.argsort(np.argsort(v, kind="stable"), kind="stable")  # noqa: E731 (ties broken by order)
    rho = float(np.corrcoef(rank(kl), rank(drop))[0, 1]) if len(runs) > 1 else 0.0
    means = {m: {k: float(np.mean([getattr(r, k) for r in runs if r.method == m]))
                 for k in ("new_acc", "old_acc", "drop", "kl")} for m in METHODS}
    return ParityResult(steps, tuple(lrs), tuple(range(seed, seed + seeds)), base_new, base_old, tuple(runs), fit, rho, means)


def findings(res: ParityResult) -> list[str]:
    """What this run shows, computed from its numbers."""
    by_drop = sorted(METHODS, key=lambda m: res.means[m]["drop"])
    by_kl = sorted(METHODS, key=lambda m: res.means[m]["kl"])
    f = res.fit
    line = "no line: every run has the same KL" if f is None else (
        f"drop = {f.slope:+.3f}*KL {f.intercept:+.3f}, R² = {'n/a' if f.r2 is None else format(f.r2, '.2f')}")
    return [f"drop vs KL(pi0||pi) over {len(res.runs)} runs: {line}; Spearman rank correlation {res.rank_corr:+.2f}",
            f"methods by mean drop (least first): {', '.join(by_drop)}; by mean KL: {', '.join(by_kl)}",
            "RL and oracle SFT forget least, as in the paper" if set(by_drop[:2]) == {"rl", "sft-oracle"}
            else "RL and oracle SFT are NOT the two methods that forget least here"]


def render(res: ParityResult) -> str:
    lines = [f"base pi0: new-task (parity) acc {100 * res.base_new_acc:.1f}%, old-task acc {100 * res.base_old_acc:.1f}%",
             f"{'method':<13}{'runs':>5}{'new acc':>9}{'old acc':>9}{'drop':>7}{'KL':>8}"]
    for m in METHODS:
        mm, n = res.means[m], sum(r.method == m for r in res.runs)
        lines.append(f"{m:<13}{n:>5}{100 * mm['new_acc']:>8.1f}%{100 * mm['old_acc']:>8.1f}%"
                     f"{100 * mm['drop']:>+7.1f}{mm['kl']:>8.3f}")
    return "\n".join(lines)


