"""Automatic sparse-update scheme search (`tte search`), after "On-Device Training Under
256KB Memory" (Lin et al. 2022, sec. 3.2): contribution analysis by short fine-tunes
(tte/search/analysis.py), memory cost by compiling (this module), and a solver that
maximises the summed contribution within SRAM and flash budgets (tte/search/solver.py).

    from tte.search import search
    r = search("mcunet-5fps.pkl", sram="256K", flash="1M", data="digits", limit=600,
               analysis_size=64)
    r["scheme"]   # {"n_bias_update": ..., "weight_update_idx": [...], ...} for tte.compile

Defaults: bias k in 1, 3, 6, 9, 12, 16, 20, 24, 30 and all convolutions; weight candidates
the last 12 convolutions (the paper also restricts weight updates to the later layers, where
the weights are large but the activations small) at ratios 1/8, 1/4, 1/2, 1, each measured on
top of the head and the biases of those 12; 300 SGD steps of batch 1, lr 0.005, per
fine-tune. For MCUNet-5FPS (42 convolutions: 59 fine-tunes) this setting took 21.5 minutes
on 2 shared cores: `--data digits --limit 1000 --analysis-size 64 --input-size 128
--int8-input --steps 700` (700 training / 300 held-out digits at 64x64; the memory is that
of the deployed 128x128 model with an int8 input).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

from tte.errors import TTEError
from tte.search.analysis import CACHE_DIR, analyse, file_hash, key
from tte.search.analysis import verify as verify_scheme
from tte.search.solver import Cost, Problem, Scheme, check_fits, choose

DEFAULT_BIAS_GRID = (1, 3, 6, 9, 12, 16, 20, 24, 30)  # and every convolution
DEFAULT_RATIOS = (0.125, 0.25, 0.5, 1.0)
DEFAULT_WINDOW = 12  # weight candidates: the last 12 convolutions (MCUNet: blocks 10-13)
MIN_GAIN = 0.03  # a weight option must beat the bias baseline by this much accuracy
_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "KIB": 1024, "M": 1 << 20, "MB": 1 << 20,
          "MIB": 1 << 20}


def parse_size(text: str | int) -> int:
    """Bytes from 262144, "256K", "256KB", "1M", "1.5MiB" (K = 1024)."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text > 0:
            return text
    else:
        s = str(text).strip().upper()
        num = s.rstrip("KMIB")
        try:
            value = float(num) * _UNITS[s[len(num):]]
        except (ValueError, KeyError):
            value = 0
        if value > 0 and value == int(value):
            return int(value)
    raise TTEError(f"bad memory size {text!r}: give bytes (262144) or a number with K or M "
                   "(256K, 1M; K = 1024 bytes)")


def _compiler_hash() -> str:
    """The compiler's sources: memory figures change with them, so they key the cost cache."""
    h = hashlib.sha256()
    for p in sorted(Path(__file__).resolve().parents[1].rglob("*.py")):
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


class _Costs:
    """Compiled memory cost of a scheme, cached in memory and on disk."""

    def __init__(self, model: str, options: dict, optimizer: dict, cache: Path) -> None:
        self.model, self.options, self.optimizer = model, options, optimizer
        ident = {"model": file_hash(model), "options": options, "optimizer": optimizer,
                 "compiler": _compiler_hash()}
        self.path = cache / f"costs-{key(ident)}.json"
        try:
            self.known = json.loads(self.path.read_text()) if self.path.exists() else {}
        except (OSError, ValueError):
            self.known = {}
        self.compiled = 0

    def __call__(self, s: Scheme) -> Cost:
        name = json.dumps(s.as_dict())
        if name not in self.known:
            import tte
            prog = tte.compile(self.model, update=s.as_dict(), optimizer=self.optimizer,
                               **self.options)
            self.known[name] = prog.report()["memory"]
            self.compiled += 1
        m = self.known[name]
        trainable = m["sram"]["trainable_parameters"] + m["sram"]["optimizer_state"]
        return Cost(m["sram_bytes"] - trainable, trainable, m["flash_bytes"], m)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.known))
        os.replace(tmp, self.path)


def search(model: str | os.PathLike, *, sram: int | str, flash: int | str, data: str,
           limit: int | None = None, input_size: int | None = None,
           analysis_size: int | None = None, int8_input: bool = False,
           precision: str | None = None, head: str | None = None, steps: int = 300,
           lr: float = 0.005, momentum: float = 0.0, layers: int = DEFAULT_WINDOW,
           bias_grid: Sequence[int] | None = None, ratios: Sequence[float] = DEFAULT_RATIOS,
           seed: int = 0, jobs: int = 2, cache_dir: str | os.PathLike | None = None,
           progress: bool = True, patch: str | None = None, verify: bool = False,
           min_gain: float = MIN_GAIN) -> dict:
    """Search the sparse-update scheme of the largest measured contribution that fits.

    data: "digits", "faces" (tte.datasets) or a .npz with x and y; limit: images used.
    MCU backbones (.pkl): input_size is the deployed resolution (memory; default 128),
    analysis_size the fine-tunes' (default input_size); int8_input, precision and head as
    in tte.compile (a new head with the data's classes). steps: SGD steps (batch 1) per
    fine-tune; layers: weight candidates are the last `layers` convolutions; bias_grid:
    the k of "biases of the last k convolutions" tried. patch="auto" costs every scheme with
    the patch-based first stage (tte.compile's patch; ~10 s per compile at 128x128 instead of
    0.1 s). verify fine-tunes the chosen scheme once more, as the analysis did its parts, and
    reports the measured accuracy beside the predicted one. A weight option must gain at least
    min_gain (accuracy, 0.03 = 3 points: about a short fine-tune's run-to-run noise) over the
    bias baseline to be a candidate; below that its gain is noise that does not add up. Returns the scheme (tte/sparse.py's
    format), its predicted contribution and compiled memory, and the analysis summary."""
    from tte.api import load_model
    from tte.datasets import fingerprint, load_dataset
    from tte.sparse import RATIOS, conv_layers
    sram_b, flash_b = parse_size(sram), parse_size(flash)
    path = os.fspath(model)
    if not os.path.isfile(path):
        raise TTEError(f"model file {path!r} does not exist")
    bad = [r for r in ratios if r not in RATIOS or r == 0]
    if bad or not ratios:
        raise TTEError(f"ratios {bad} are not among {RATIOS[1:]}")
    if steps < 1 or layers < 0 or jobs < 1 or min(bias_grid or [1]) < 1:
        raise TTEError("steps, jobs and the bias grid's k must be >= 1, layers >= 0")
    mcu = path.endswith(".pkl")
    mcu_opts = {k: v for k, v in {"precision": precision, "head": head}.items() if v}
    if mcu:
        input_size = input_size or 128
        analysis_size = analysis_size or input_size
        channels, h, w = 3, analysis_size, analysis_size
    elif input_size or analysis_size or int8_input:
        raise TTEError("input_size, analysis_size and int8_input apply to MCU backbones "
                       "(.pkl) only")
    else:
        fwd = load_model(path)
        _, channels, h, w = fwd.values[fwd.inputs[0]].shape
    d = load_dataset(data, size=(h, w), seed=seed, limit=limit, channels=channels)
    tune_opts = cost_opts = {}
    if mcu:  # a new head for the data's classes
        tune_opts = {"num_classes": len(d.classes), "input_size": analysis_size, **mcu_opts}
        cost_opts = {**tune_opts, "input_size": input_size, "int8_input": int8_input}
        fwd = load_model(path, **tune_opts)
    if patch:
        cost_opts = {**cost_opts, "patch": patch}
    convs = conv_layers(fwd)
    if not convs:
        raise TTEError(f"{path!r} has no convolution layers to search a scheme over")
    grid = list(bias_grid or DEFAULT_BIAS_GRID) + ([] if bias_grid else [len(convs)])
    optimizer = {"lr": lr, "momentum": momentum}
    setting = {"data": fingerprint(data), "size": [h, w], "limit": limit}
    costs = _Costs(path, cost_opts, optimizer, Path(cache_dir or CACHE_DIR))
    try:  # a budget that nothing fits fails before the fine-tunes
        check_fits(Scheme(min(min(grid), len(convs))), costs, sram_b, flash_b)
        problem, summary = analyse(
            path, tune_opts, d, setting=setting, steps=steps, optimizer=optimizer, seed=seed,
            bias_grid=grid, window=layers, ratios=list(ratios), n_convs=len(convs),
            jobs=jobs, cache_dir=cache_dir, progress=progress)
        problem = Problem(problem.bias, {
            i: kept for i, gains in problem.weights.items()
            if (kept := {r: g for r, g in gains.items() if g >= min_gain})})
        scheme, cost, rounds, proven = choose(problem, costs, sram_b, flash_b)
    finally:
        costs.save()
    parts = {f"bias {scheme.n_bias}": problem.bias[scheme.n_bias]}
    parts.update({f"w{i}@{r:g}": problem.weights[i][r] for i, r in scheme.weights})
    measured = verify_scheme(path, tune_opts, d, scheme, steps=steps, optimizer=optimizer,
                             seed=seed) if verify else None
    return {"scheme": scheme.as_dict(), "contribution": problem.contribution(scheme),
            "measured": measured,
            "contribution_parts": parts,
            "predicted_accuracy": summary["head_only_accuracy"] + problem.contribution(scheme),
            "layers": {i: convs[i].inputs[1] for i, _ in scheme.weights},
            "memory": cost.detail, "budget": {"sram_bytes": sram_b, "flash_bytes": flash_b},
            "solver_rounds": rounds, "proven_optimal": proven,
            "schemes_compiled": costs.compiled,
            "data": d.description, "analysis": summary}


def format_result(r: dict) -> str:
    """The chosen scheme, its predicted contribution and its memory against the budget."""
    s, m, b = r["scheme"], r["memory"], r["budget"]
    weights = ", ".join(f"{i} ({r['layers'][i]}) x{q:g}" for i, q in
                        zip(s["weight_update_idx"], s["weight_update_ratio"])) or "none"
    a = r["analysis"]
    lines = [f"scheme: head + biases of the last {s['n_bias_update']} convolutions; "
             f"weights: {weights}",
             f"predicted contribution: {100 * r['contribution']:+.1f} points of held-out "
             f"accuracy over the head alone ({100 * a['head_only_accuracy']:.1f}% -> "
             f"{100 * r['predicted_accuracy']:.1f}%): " + ", ".join(
                 f"{k} {100 * v:+.1f}" for k, v in r["contribution_parts"].items()),
             f"analysis: {a['fine_tunes']} fine-tunes ({a['fine_tunes_run']} run now, the "
             f"rest cached in {a['cache']}); {r['solver_rounds']} solver round(s), "
             + ("optimal" if r["proven_optimal"] else "optimality not proven")]
    if r.get("measured"):
        lines.append(f"measured: a fine-tune of this scheme as in the analysis reaches "
                     f"{100 * r['measured']['accuracy']:.1f}% held-out")
    lines += ["",
             f"{'memory':<26}{'bytes':>12}{'budget':>12}"]
    lines.append(f"{'SRAM':<26}{m['sram_bytes']:>12,}{b['sram_bytes']:>12,}")
    lines += [f"  {k.replace('_', ' '):<24}{v:>12,}" for k, v in m["sram"].items()]
    lines.append(f"{'flash':<26}{m['flash_bytes']:>12,}{b['flash_bytes']:>12,}")
    return "\n".join(lines)
