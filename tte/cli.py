"""The `tte` command line."""
from __future__ import annotations

import argparse
import json
import os
import sys

from tte.errors import TTEError


def _update_arg(text: str) -> str | list[str]:
    return text if text in ("full", "bias") else [s for s in text.split(",") if s]


def _cmd_ops(args: argparse.Namespace) -> None:
    from tte.ops import all_ops
    from tte.frontends.onnx_frontend import SUPPORTED_ONNX_OPS
    print("IR ops (forward, backward, loss and update):")
    for name, op in all_ops().items():
        print(f"  {name:<28} {op.doc}")
    print("\nONNX ops read by the frontend:\n  " + ", ".join(SUPPORTED_ONNX_OPS))


def _cmd_show(args: argparse.Namespace) -> None:
    from tte.api import load_model
    print(load_model(args.model, fold_batchnorm=not args.no_fold_batchnorm))


def _cmd_compile(args: argparse.Namespace) -> None:
    import tte
    prog = tte.compile(args.model, update=_update_arg(args.update), loss=args.loss,
                       optimizer={"name": "sgd", "lr": args.lr, "momentum": args.momentum,
                                  "weight_decay": args.weight_decay},
                       fold_batchnorm=not args.no_fold_batchnorm)
    os.makedirs(args.output, exist_ok=True)
    with open(os.path.join(args.output, "training_graph.txt"), "w") as f:
        f.write(str(prog.training_graph) + "\n")
    report = prog.report()
    with open(os.path.join(args.output, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    b = report["bytes"]
    print(f"{prog.training_graph.name}: {len(prog.trainable)} trainable tensors "
          f"({b['trainable_parameters']} B), {sum(report['nodes'].values())} nodes "
          f"{report['nodes']}\nwrote {args.output}/training_graph.txt and report.json")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tte", description="TTE, the tiny training engine: compile "
                                "a model's training step (forward, loss, gradients, update).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    s = sub.add_parser("ops", help="list the supported ops",
                       description="List the IR ops and the ONNX ops the frontend reads.")
    s.set_defaults(run=_cmd_ops)
    s = sub.add_parser("show", help="print a model's IR", description="Read MODEL and print its "
                       "forward IR graph.")
    s.add_argument("model", help="path to a .onnx file")
    s.add_argument("--no-fold-batchnorm", action="store_true",
                   help="keep batch-norm as its own op instead of folding it into the conv")
    s.set_defaults(run=_cmd_show)
    s = sub.add_parser("compile", help="compile a training step",
                       description="Derive the training step of MODEL and write the training "
                       "graph (training_graph.txt) and report.json into DIR.")
    s.add_argument("model", help="path to a .onnx file")
    s.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    s.add_argument("--update", default="full", help="'full', 'bias' or comma-separated "
                   "parameter names to train (default: full)")
    s.add_argument("--loss", default="cross_entropy", choices=["cross_entropy", "mse"])
    s.add_argument("--lr", type=float, default=0.01, help="SGD learning rate (default 0.01)")
    s.add_argument("--momentum", type=float, default=0.0, help="SGD momentum (default 0)")
    s.add_argument("--weight-decay", type=float, default=0.0, help="L2 weight decay (default 0)")
    s.add_argument("--no-fold-batchnorm", action="store_true",
                   help="keep batch-norm as its own op (its scale and bias are then trainable)")
    s.set_defaults(run=_cmd_compile)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except TTEError as e:
        print(f"tte: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
