"""Contribution analysis (Lin et al. 2022, sec. 3.2): what each part of a sparse update adds
to held-out accuracy, measured by short fine-tunes of the generated C on the host.

Every run trains the new head. The bias runs add the biases of the last k convolutions (k on
a grid); the weight runs add one layer's weights at one ratio on top of the head and the
biases of the last `window` convolutions (the candidate layers), so a weight's contribution
is what it adds to that bias baseline. All runs see the same samples in the same order
(batch 1, plain SGD), so differences come from the scheme, not from the data order.

Results are cached per run in one JSON file per setting (model file hash, data, seed,
fine-tune options); a second search with another budget, or with more candidates, re-runs
only what is missing.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from tte.search.solver import Problem, Scheme

CACHE_DIR = Path(os.environ.get("TTE_SEARCH_CACHE", Path.home() / ".cache" / "tte" / "search"))


def file_hash(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def key(setting: dict) -> str:
    return hashlib.sha256(json.dumps(setting, sort_keys=True).encode()).hexdigest()[:20]


def run_name(s: Scheme) -> str:
    return f"bias {s.n_bias}" + "".join(f", w{i}@{r:g}" for i, r in s.weights)


def plan(n_convs: int, bias_grid: list[int], window: int, ratios: list[float]
         ) -> tuple[list[int], list[int], list[Scheme]]:
    """(bias grid, candidate layers, the fine-tunes to run) for a model of n_convs; window
    <= n_convs."""
    grid = sorted({min(k, n_convs) for k in bias_grid if k >= 1})
    layers = list(range(n_convs - window, n_convs))
    runs = [Scheme(0)] + [Scheme(k) for k in grid] + [Scheme(window)]
    runs += [Scheme(window, ((i, r),)) for i in layers for r in ratios]
    return grid, layers, list(dict.fromkeys(runs))


# --- one fine-tune (in a worker process) ----------------------------------------------

_CTX: dict[str, Any] = {}


def _init(ctx: dict) -> None:
    _CTX.clear()
    _CTX.update(ctx)


def _finetune(s: Scheme) -> tuple[Scheme, dict]:
    import tte
    c, t0 = _CTX, time.perf_counter()
    prog = tte.compile(c["model"], update=s.as_dict(), optimizer=c["optimizer"],
                       **c["options"])
    runner = prog.build()
    x, y = c["x_train"], c["y_train"]
    losses = [runner.train_step(x[i], int(y[i])) for i in c["order"]]
    hits = [int(np.argmax(runner.forward(xt))) == yt for xt, yt in zip(c["x_test"], c["y_test"])]
    return s, {"accuracy": float(np.mean(hits)), "final_train_loss":
               float(np.mean(losses[-max(1, len(losses) // 10):])),
               "seconds": round(time.perf_counter() - t0, 2)}


def _run_all(todo: list[Scheme], ctx: dict, jobs: int, progress: bool, done) -> None:
    """Fine-tune every scheme of todo; done(scheme, result) as each finishes."""
    from tqdm import tqdm
    bar = tqdm(total=len(todo), desc="contribution analysis", unit="fine-tune",
               disable=not progress)
    if jobs <= 1:
        _init(ctx)
        for s in todo:
            done(*_finetune(s))
            bar.update()
    else:
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_init,
                                 initargs=(ctx,)) as pool:
            for f in as_completed([pool.submit(_finetune, s) for s in todo]):
                done(*f.result())
                bar.update()
    bar.close()


def _context(model: str, options: dict, data, steps: int, optimizer: dict, seed: int) -> dict:
    """What every fine-tune of one analysis shares: the same samples in the same order."""
    order = np.random.default_rng(seed).permutation(np.resize(np.arange(len(data.y_train)),
                                                              steps))
    return {"model": model, "options": options, "optimizer": optimizer, "order": order,
            "x_train": data.x_train, "y_train": data.y_train, "x_test": data.x_test,
            "y_test": data.y_test}


def verify(model: str, options: dict, data, scheme: Scheme, *, steps: int, optimizer: dict,
           seed: int) -> dict:
    """Fine-tune the chosen scheme as the analysis fine-tuned each part: the measured
    accuracy beside the sum of contributions the solver predicted."""
    _init(_context(model, options, data, steps, optimizer, seed))
    return _finetune(scheme)[1]


# --- the analysis -----------------------------------------------------------------------

def analyse(model: str, options: dict, data, *, setting: dict, steps: int, optimizer: dict,
            seed: int, bias_grid: list[int], window: int, ratios: list[float], n_convs: int,
            jobs: int = 2, cache_dir: str | os.PathLike | None = None, progress: bool = True
            ) -> tuple[Problem, dict]:
    """The contributions as a solver Problem, and a summary (accuracies, counts, cache file).

    options: tte.compile's model options for the fine-tunes; data: a tte.datasets.Split;
    setting: what identifies the data (name or file hash, size, limit) for the cache key."""
    window = min(window, n_convs)
    grid, layers, runs = plan(n_convs, bias_grid, window, ratios)
    cache = Path(cache_dir or CACHE_DIR)
    ident = {"model": file_hash(model), "options": options, "data": setting, "seed": seed,
             "steps": steps, "optimizer": optimizer}
    path = cache / f"analysis-{key(ident)}.json"
    try:
        results = json.loads(path.read_text())["runs"] if path.exists() else {}
    except (OSError, ValueError, KeyError):
        results = {}  # an unreadable cache is rebuilt, not an error
    todo = [s for s in runs if run_name(s) not in results]

    def done(s: Scheme, result: dict) -> None:
        results[run_name(s)] = result
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"setting": ident, "runs": results}, indent=1))
        os.replace(tmp, path)  # a partial analysis survives an interrupted search

    if todo:
        _run_all(todo, _context(model, options, data, steps, optimizer, seed), jobs, progress,
                 done)
    acc = {run_name(s): results[run_name(s)]["accuracy"] for s in runs}
    head, base = acc[run_name(Scheme(0))], acc[run_name(Scheme(window))]
    problem = Problem(
        bias={k: acc[run_name(Scheme(k))] - head for k in grid},
        weights={i: {r: acc[run_name(Scheme(window, ((i, r),)))] - base for r in ratios}
                 for i in layers})
    summary = {"bias_grid": grid, "candidate_layers": layers, "head_only_accuracy": head,
               "weight_baseline_bias": window, "weight_baseline_accuracy": base, "fine_tunes": len(runs),
               "fine_tunes_run": len(todo), "cache": str(path), "accuracy": acc}
    return problem, summary
