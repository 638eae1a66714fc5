"""The `tte` command line."""
from __future__ import annotations

import argparse
import json
import os
import sys

from tte.errors import TTEError
from tte.report import SORT_KEYS
from tte.search.cli import add_search_parser


def _update_arg(text: str) -> str | list[str]:
    from tte.sparse import is_scheme
    if text in ("full", "bias") or is_scheme(text):  # "last:K" or a scheme .json file
        return text
    return [s for s in text.split(",") if s]


def _cmd_ops(args: argparse.Namespace) -> None:
    from tte.ops import all_ops
    from tte.frontends.onnx_frontend import SUPPORTED_ONNX_OPS
    from tte.frontends.tflite_frontend import SUPPORTED_TFLITE_OPS
    print("IR ops (forward, backward, loss and update):")
    for name, op in all_ops().items():
        print(f"  {name:<28} {op.doc}")
    print("\nONNX ops read by the frontend:\n  " + ", ".join(SUPPORTED_ONNX_OPS))
    print("\nTFLite ops (int8 and float32) read by the frontend:\n  "
          + ", ".join(SUPPORTED_TFLITE_OPS))


def _model_options(args: argparse.Namespace) -> dict:
    """The MCU-backbone options given on the command line (None = not given)."""
    return {"num_classes": args.num_classes, "head": args.head, "precision": args.precision,
            "input_size": args.input_size, "int8_input": args.int8_input}


def _add_model_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--no-fold-batchnorm", action="store_true",
                   help="ONNX: keep batch-norm as its own op instead of folding it into the "
                   "conv (its scale and bias are then trainable)")
    g = s.add_argument_group("MCU backbones (.pkl)")
    g.add_argument("--num-classes", type=int, metavar="N",
                   help="replace the ImageNet classifier with a new N-class head")
    g.add_argument("--head", choices=["fp32", "int8"], help="the new head's precision "
                   "(default fp32, which the paper found better)")
    s.add_argument("--precision", choices=["int8", "fp32", "fp16"], help="MCU backbones: int8 "
                   "graph (default) or dequantized fp32 weights; fp16 (any float model): "
                   "train in half precision")
    s.add_argument("--accumulate", choices=["fp16", "fp32", "auto"], default="fp16",
                   help="with --precision fp16: sum in half (default, as PULP-TrainLib), in "
                   "float, or per layer: float where a sum has more than 64 terms")
    g.add_argument("--input-size", type=int, metavar="S", help="input S x S (default 128)")
    g.add_argument("--int8-input", action="store_true", help="take the image already "
                   "quantized (int8, a quarter of the float input's SRAM)")


def _cmd_show(args: argparse.Namespace) -> None:
    from tte.api import load_model
    print(load_model(args.model, fold_batchnorm=not args.no_fold_batchnorm,
                     **_model_options(args)))


def _cmd_compile(args: argparse.Namespace) -> None:
    import tte
    from tte.errors import UnsupportedError
    from tte.report import REPORT_FILE, format_patch, nbytes, program_report
    prog = tte.compile(args.model, update=_update_arg(args.update), loss=args.loss,
                       optimizer={"name": "sgd", "lr": args.lr, "momentum": args.momentum,
                                  "weight_decay": args.weight_decay},
                       fold_batchnorm=not args.no_fold_batchnorm, qas=not args.no_qas,
                       master_weights=args.master_weights, patch=args.patch,
                       accumulate=args.accumulate, **_model_options(args))
    out = args.output
    try:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "training_graph.txt"), "w") as f:
            f.write(str(prog.training_graph) + "\n")
        try:
            project = prog.generate_c(out)
        except UnsupportedError as e:
            _write_json(os.path.join(out, REPORT_FILE), program_report(prog))
            raise UnsupportedError(f"{e} (wrote training_graph.txt and {REPORT_FILE} into "
                                   f"{out}, but no C)") from None
        report = program_report(prog, project)
        _write_json(os.path.join(out, REPORT_FILE), report)
    except OSError as e:
        raise TTEError(f"cannot write into {out!r}: {e.strerror or e}") from None
    mem, sram = report["memory"], report["memory"]["sram"]
    print(f"{prog.training_graph.name}: {len(prog.trainable)} trainable tensors "
          f"({sram['trainable_parameters']:,} B), {sum(report['nodes'].values())} nodes "
          f"{report['nodes']}")
    print(f"memory: arena {nbytes(mem['arena_bytes'])} [lower bound "
          f"{mem['training_lower_bound_bytes']:,} B, inference {mem['inference_arena_bytes']:,} B],"
          f" SRAM {nbytes(mem['sram_bytes'])}, flash {nbytes(mem['flash_bytes'])}")
    if prog.patch:
        print(format_patch(prog.patch))
    print(f"wrote {project.source.name}, {project.header.name}, training_graph.txt and "
          f"{REPORT_FILE} into {out}; `tte report {out}` shows where the bytes go")


def _write_json(path: str, data: dict) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


def _cmd_report(args: argparse.Namespace) -> None:
    from tte.report import format_memory, format_patch, load_report
    report = load_report(args.dir)
    print(format_memory(report, sort=args.sort))
    if report.get("patch"):
        print("\n" + format_patch(report["patch"]))
    if args.plot:
        from tte.memory.plot import plot_arena
        plot_arena(report, args.plot)
        print(f"\nwrote {args.plot}")


MODEL_HELP = "path to a .onnx, .tflite or MCU backbone .pkl file"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tte", description="TTE, the tiny training engine: compile "
                                "a model's training step (forward, loss, gradients, update).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    s = sub.add_parser("ops", help="list the supported ops",
                       description="List the IR ops and the ONNX ops the frontend reads.")
    s.set_defaults(run=_cmd_ops)
    s = sub.add_parser("show", help="print a model's IR", description="Read MODEL and print its "
                       "forward IR graph.")
    s.add_argument("model", help=MODEL_HELP)
    _add_model_options(s)
    s.set_defaults(run=_cmd_show)
    s = sub.add_parser("compile", help="compile a training step",
                       description="Derive the training step of MODEL and write into DIR the C "
                       "project (<name>.c, <name>.h), the training graph (training_graph.txt) "
                       "and report.json (ops, tensors, memory plan).")
    s.add_argument("model", help=MODEL_HELP)
    s.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    s.add_argument("--update", default="full", help="'full', 'bias', 'last:K' (weights and "
                   "biases of the last K convolutions), comma-separated "
                   "parameter names, or a sparse-update scheme .json (see tte/sparse.py) "
                   "(default: full)")
    s.add_argument("--loss", default="cross_entropy", choices=["cross_entropy", "mse"])
    s.add_argument("--lr", type=float, default=0.01, help="SGD learning rate (default 0.01)")
    s.add_argument("--momentum", type=float, default=0.0, help="SGD momentum (default 0)")
    s.add_argument("--weight-decay", type=float, default=0.0, help="L2 weight decay (default 0)")
    s.add_argument("--no-qas", action="store_true", help="int8 graphs: plain SGD on the "
                   "integers, without quantization-aware scaling of their gradients")
    s.add_argument("--master-weights", action="store_true", help="int8 graphs: keep an fp32 "
                   "master copy of each updated int8 weight (4 bytes per weight of SRAM)")
    s.add_argument("--patch", metavar="auto|K:N", help="run the first high-resolution layers "
                   "tile by tile: 'auto' picks the split with the smallest arena, K:N runs the "
                   "first K nodes on an N x N grid of tiles (default: whole maps)")
    _add_model_options(s)
    s.set_defaults(run=_cmd_compile)
    s = sub.add_parser("report", help="show where a compiled model's bytes go",
                       description="Read DIR/report.json (written by `tte compile MODEL -o "
                       "DIR`) and print the memory table: flash, SRAM split, the arena against "
                       "its lower bound, and every arena buffer with its offset and lifetime.")
    s.add_argument("dir", metavar="DIR", help="output directory of `tte compile`")
    s.add_argument("--sort", choices=SORT_KEYS, default="offset",
                   help="order of the buffer rows: by offset (default, the arena's layout), "
                   "by size (largest first) or by first node")
    s.add_argument("--plot", metavar="FILE.png", help="also draw the arena over time: one "
                   "rectangle per buffer (node index x byte offset) and the lower bound")
    s.set_defaults(run=_cmd_report)
    add_search_parser(sub)
    from targets.firmware.cli import add_parsers as add_mcu_parsers
    add_mcu_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except TTEError as e:
        print(f"tte: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
