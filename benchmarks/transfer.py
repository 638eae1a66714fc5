#!/usr/bin/env python
"""Transfer learning through int8 graphs: does quantization-aware scaling (QAS) let an int8
backbone learn as well as fp32?

An ImageNet-pretrained MCU backbone (../shared/models/mcu_imagenet) gets a new 2- or 10-class
head and is fine-tuned on a small real data set that ships inside a PyPI wheel
(benchmarks/transfer_data.py), batch 1, plain SGD, the same samples in the same order and
the same number of steps for three versions of one training step, each run by TTE's
generated C on the host:

  (a) fp32      the backbone with dequantized weights (w = s_w * w_q, b = s_x s_w b_q),
                each int8 clamp as a float clip; fp32 SGD;
  (b) int8      the int8 graph (bit-exact published semantics), fp32 gradients through it,
                int8 weights / int32 biases updated in place by plain SGD on the integers;
  (c) int8+QAS  the same with the integer gradients scaled by s_w^-2 (weights) and
                (s_x s_w)^-2 (biases), which makes the update equal fp32 SGD in real units.

(c') adds fp32 master copies of the updated int8 weights (updates below one int8 step are
kept). The trained tensors (the same in all rows) are the new head (fp32 by default, as the
paper recommends; --head int8 makes every trained tensor an integer one, so the int8 rows
learn only through integer updates), the biases of the last N_BIAS convolutions and the
weights of the last N_WEIGHT ones -- a sparse update in the spirit of the paper. Held-out accuracy is measured with each program's own forward pass.
The paper's finding is (c) ~ (a) > (b); the numbers below are whatever this run gives.

    python benchmarks/transfer.py                    # faces (lfw_subset) with mcunet-5fps
    python benchmarks/transfer.py --dataset digits --limit 2000
    python benchmarks/transfer.py --quick            # smoke run (< 1 min)
Writes results/transfer_<dataset>.md, .json and .png.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import tte  # noqa: E402
from benchmarks.transfer_data import load_dataset  # noqa: E402

MODELS_DIR = ROOT.parent / "shared" / "models" / "mcu_imagenet"
CONFIGS = {  # name: (compile options, label)
    "fp32": ({"precision": "fp32"}, "(a) fp32, dequantized weights"),
    "int8": ({"qas": False}, "(b) int8, no QAS"),
    "int8_qas": ({"qas": True}, "(c) int8 with QAS"),
    "int8_qas_master": ({"qas": True, "master_weights": True},
                        "(c') int8 with QAS, fp32 master copies"),
}
N_BIAS, N_WEIGHT = 12, 4


def trained_tensors(model: Path, size: int, classes: int) -> list[str]:
    """Head + biases of the last N_BIAS convs + weights of the last N_WEIGHT convs."""
    g = tte.load_model(model, num_classes=classes, input_size=size)
    convs = [p[:-len(".weight")] for p in g.params()
             if p.endswith(".weight") and not p.startswith("head.")]
    return (["head.weight", "head.bias"] + [f"{c}.bias" for c in convs[-N_BIAS:]]
            + [f"{c}.weight" for c in convs[-N_WEIGHT:]])


def accuracy(runner, xs: np.ndarray, ys: np.ndarray) -> float:
    return float(np.mean([int(np.argmax(runner.forward(x))) == y for x, y in zip(xs, ys)]))


def run_config(name: str, model: Path, data, args, update: list[str]) -> dict:
    options, _ = CONFIGS[name]
    head = "fp32" if name == "fp32" else args.head
    prog = tte.compile(model, num_classes=len(data.classes), input_size=args.size, head=head,
                       update=update, optimizer={"lr": args.lr}, **options)
    runner = prog.build()
    order = np.random.default_rng(args.seed).permutation(
        np.resize(np.arange(len(data.y_train)), args.steps))
    curve, losses, t0 = [], [], time.perf_counter()
    before = accuracy(runner, data.x_test, data.y_test)
    for step, i in enumerate(order, 1):
        losses.append(runner.train_step(data.x_train[i], int(data.y_train[i])))
        if step % args.eval_every == 0 or step == len(order):
            curve.append((step, accuracy(runner, data.x_test, data.y_test)))
    seconds = time.perf_counter() - t0
    report = prog.report()
    return {"config": name, "label": CONFIGS[name][1], "accuracy_before": before,
            "accuracy": curve[-1][1], "curve": curve, "seconds": seconds,
            "mean_loss_first_10pct": float(np.mean(losses[:max(1, len(losses) // 10)])),
            "mean_loss_last_10pct": float(np.mean(losses[-max(1, len(losses) // 10):])),
            "updated_sram_bytes": sum(u["sram_bytes"] for u in report["updates"]),
            "arena_bytes": report["memory"]["arena_bytes"]}


def write_results(results: list[dict], args, data, update: list[str]) -> Path:
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stem = out / (f"transfer_{args.dataset}" + ("_int8head" if args.head == "int8" else "")
                  + ("_quick" if args.quick else ""))
    meta = {"model": args.model, "dataset": data.description, "classes": data.classes,
            "train": int(len(data.y_train)), "test": int(len(data.y_test)), "size": args.size,
            "steps": args.steps, "lr": args.lr, "seed": args.seed, "head": args.head,
            "trained_tensors": update}
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results},
                                                    indent=2) + "\n")
    lines = [f"# Transfer learning through int8 graphs: {args.model} on {args.dataset}", "",
             f"{data.description}. {meta['train']} training / {meta['test']} held-out images at "
             f"{args.size}x{args.size}; batch 1, SGD lr {args.lr}, {args.steps} steps (the same "
             f"samples in the same order for every row), seed {args.seed}. Trained: the new "
             f"{args.head} head (fp32 in row (a)), the biases of the last {N_BIAS} convolutions and the weights of the last "
             f"{N_WEIGHT}. Reproduce: `python benchmarks/transfer.py --dataset {args.dataset}"
             f" --model {args.model} --steps {args.steps} --size {args.size} --head {args.head}"
             f"{f' --limit {args.limit}' if args.limit else ''} --lr {args.lr}`.", "",
             "| training step | held-out accuracy before | after | train loss first 10% -> "
             "last 10% | updated tensors' SRAM | time |", "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['label']} | {r['accuracy_before']:.1%} | **{r['accuracy']:.1%}** | "
                     f"{r['mean_loss_first_10pct']:.3f} -> {r['mean_loss_last_10pct']:.3f} | "
                     f"{r['updated_sram_bytes']:,} B | {r['seconds']:.0f} s |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    _plot(results, stem.with_suffix(".png"), f"{args.model} on {args.dataset}")
    return stem


def _plot(results: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for r in results:
        steps, acc = zip(*r["curve"])
        ax1.plot((0,) + steps, (r["accuracy_before"],) + acc, marker=".", label=r["label"])
    ax1.set(xlabel="training step (batch 1)", ylabel="held-out accuracy", title=title)
    ax1.legend()
    ax2.bar([r["label"] for r in results], [r["accuracy"] for r in results],
            color=["tab:blue", "tab:orange", "tab:green", "tab:olive"][:len(results)])
    ax2.set(ylabel="final held-out accuracy", ylim=(0, 1))
    ax2.tick_params(axis="x", labelrotation=15)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="faces", choices=["faces", "digits"])
    p.add_argument("--model", default="mcunet-5fps",
                   choices=["mcunet-5fps", "mbv2-w0.35", "proxyless-w0.3"])
    p.add_argument("--size", type=int, default=128, help="input size (default 128)")
    p.add_argument("--steps", type=int, default=1400, help="SGD steps (default 1400)")
    p.add_argument("--lr", type=float, default=0.005)
    p.add_argument("--limit", type=int, help="use at most this many images of the data set")
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--head", default="fp32", choices=["fp32", "int8"],
                   help="the new head of the int8 rows (default fp32)")
    p.add_argument("--quick", action="store_true", help="smoke run: 64x64, 60 steps")
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.steps, args.eval_every, args.limit = 64, 60, 30, args.limit or 120
    model = MODELS_DIR / f"{args.model}.pkl"
    data = load_dataset(args.dataset, size=args.size, seed=args.seed, limit=args.limit)
    update = trained_tensors(model, args.size, len(data.classes))
    results = []
    for name in CONFIGS:
        r = run_config(name, model, data, args, update)
        print(f"{r['label']:<32} accuracy {r['accuracy_before']:.1%} -> {r['accuracy']:.1%} "
              f"({r['seconds']:.0f} s)", flush=True)
        results.append(r)
    stem = write_results(results, args, data, update)
    print(f"wrote {stem}.md, .json, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
