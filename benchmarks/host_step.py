#!/usr/bin/env python
"""Host training-step latency and memory: TTE's generated C against jax.jit, one core.

For every model of ``tests/models.py`` (and MobileNetV2-w0.35 at 64x64 when its builder
exists) the same training step -- forward, softmax cross-entropy, full backward, SGD with
lr 0.01 and momentum 0.9, batch 1, float32, BatchNormalization folded into the preceding
convolution (TTE's default, ``fold_batchnorm=True``; ``benchmarks/jax_models.py`` folds
the same BNs the same way) -- is run by

* ``tte C``   : the generated C, called directly through its cffi function pointer;
* ``tte API`` : the same C through ``Runner.train_step`` (input checks in Python);
* ``jax``     : ``jax.jit(step, donate_argnums=(0, 1))`` of a value_and_grad step,
                ``block_until_ready`` on the loss, the parameters and the momentum.

Latency: all three in one loop, interleaved (the order rotates each iteration), on one
core (``os.sched_setaffinity``) with XLA told to use one thread; median and IQR per side.
Memory: TTE's planned arena and SRAM total against the peak RSS (VmHWM) of separate processes
that run the same steps -- one loading only the built C extension, one running the jitted
JAX step -- and against idle processes that import the same modules.

    python benchmarks/host_step.py            # full run (~5-10 min), writes results/
    python benchmarks/host_step.py --quick    # smoke run (< 1 min)
"""
from __future__ import annotations

import os

# One thread for XLA and for any BLAS, before numpy or jax are imported.
_XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _XLA_ONE_THREAD).strip()
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LR, MOMENTUM = 0.01, 0.9
N_SAMPLES = 8          # the steps cycle over this many fixed (x, label) pairs
CHECK_STEPS = 3        # first steps whose losses are compared between TTE and JAX ...
CHECK_ENFORCED = 2     # ... and how many of them must agree to CHECK_RTOL (the deep model's
CHECK_RTOL = 1e-3      # unstable training amplifies float rounding from the third step on)
RESULTS = HERE / "results"


# ----------------------------------------------------------------------------------------
# small helpers (no numpy / jax here: child processes import only what they measure)
# ----------------------------------------------------------------------------------------

def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def _report_self(extra: dict | None = None) -> None:
    out = {"peak_rss_kib": _status_kib("VmHWM"), "final_rss_kib": _status_kib("VmRSS")}
    out.update(extra or {})
    print("RESULT " + json.dumps(out), flush=True)


def _load_samples(path: str):
    import numpy as np
    data = np.load(path)
    return [np.ascontiguousarray(x) for x in data["xs"]], [int(y) for y in data["ys"]]


# ----------------------------------------------------------------------------------------
# child processes
# ----------------------------------------------------------------------------------------

def child_tte(so_path: str, prefix: str, samples: str, steps: int) -> None:
    """Load only the built extension (numpy + cffi backend) and run `steps` steps."""
    import importlib.util

    import numpy as np
    name = Path(so_path).name.split(".")[0]
    spec = importlib.util.spec_from_file_location(name, so_path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ffi, fn = mod.ffi, getattr(mod.lib, f"tte_{prefix}_train_step")
    xs, ys = _load_samples(samples)
    loss = np.zeros(1, np.float32)
    lp = ffi.cast("float *", loss.ctypes.data)
    xps = [ffi.cast("const float *", x.ctypes.data) for x in xs]
    losses = []
    for i in range(steps):
        if fn(xps[i % len(xs)], ys[i % len(ys)], lp) != 0:
            raise SystemExit("train_step failed")
        losses.append(float(loss[0]))
    _report_self({"losses": losses})


def child_jax(model_path: str, samples: str, steps: int) -> None:
    """Trace, compile and run the jitted JAX step `steps` times."""
    import jax
    import jax.numpy as jnp
    import onnx

    from benchmarks.jax_models import make_train_step
    xs, ys = _load_samples(samples)
    step, params, mom = make_train_step(onnx.load(model_path), lr=LR, momentum=MOMENTUM)
    xj = [jnp.asarray(x) for x in xs]
    yj = [jnp.asarray([y], jnp.int32) for y in ys]
    losses = []
    for i in range(steps):
        out = step(params, mom, xj[i % len(xj)], yj[i % len(yj)])
        jax.block_until_ready(out)
        loss, params, mom = out
        losses.append(float(loss))
    _report_self({"losses": losses})


def child_idle(kind: str) -> None:
    """Import what the matching measured process imports, and nothing more."""
    if kind == "tte":
        import importlib.util  # noqa: F401

        import zipfile  # noqa: F401  (np.load of the samples)

        import _cffi_backend  # noqa: F401
        import numpy  # noqa: F401
    else:
        import jax
        import jax.numpy as jnp
        import numpy  # noqa: F401
        import onnx  # noqa: F401

        import benchmarks.jax_models  # noqa: F401
        if kind == "jax-init":  # also bring up the XLA CPU client and run one tiny op
            jax.block_until_ready(jnp.zeros(4) + 1)
    _report_self()


def run_child(args: list[str]) -> dict:
    """Run this script as a child and return what it reported about itself.

    The peak is the child's own VmHWM (peak RSS of its address space since exec). Not
    wait4/RUSAGE_CHILDREN ru_maxrss: Linux carries the forking parent's RSS into the
    child's ru_maxrss across exec, so a child of this (large) process would report at
    least the parent's size."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


# ----------------------------------------------------------------------------------------
# statistics and machine info
# ----------------------------------------------------------------------------------------

def _quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summarize(ns: list[int]) -> dict:
    us = [v / 1e3 for v in ns]
    return {"n": len(us), "median_us": statistics.median(us), "q1_us": _quantile(us, 0.25),
            "q3_us": _quantile(us, 0.75), "iqr_us": _quantile(us, 0.75) - _quantile(us, 0.25),
            "p5_us": _quantile(us, 0.05), "p95_us": _quantile(us, 0.95),
            "mean_us": statistics.fmean(us), "min_us": min(us)}


def _cmd_line(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_info(core: int) -> dict:
    import cffi
    import jax
    import jaxlib
    import numpy
    import onnx

    from targets.host.cbuild import STRICT_FLAGS
    cpu, mhz = "unknown", None
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name") and cpu == "unknown":
            cpu = line.split(":", 1)[1].strip()
        if line.startswith("cpu MHz") and mhz is None:
            mhz = float(line.split(":", 1)[1])
    flags = next((l.split(":", 1)[1].split() for l in
                  Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("flags")), [])
    dirty = _cmd_line(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu, "cpu_mhz": mhz, "logical_cpus": os.cpu_count(),
        "simd": " ".join(f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f") if f in flags),
        "pinned_core": core, "kernel": platform.release(),
        "python": platform.python_version(), "numpy": numpy.__version__,
        "jax": jax.__version__, "jaxlib": jaxlib.__version__, "onnx": onnx.__version__,
        "cffi": cffi.__version__, "cc": _cmd_line(["cc", "--version"]).splitlines()[0],
        "tte_c_flags": " ".join(STRICT_FLAGS),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "git_commit": _cmd_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
        + (" (+ uncommitted changes)" if dirty and dirty != "unknown" else ""),
    }


# ----------------------------------------------------------------------------------------
# the benchmark
# ----------------------------------------------------------------------------------------

def model_builders(names: list[str] | None, quick: bool) -> dict:
    from tests import models
    builders = dict(models.MODELS)
    mbv2 = getattr(models, "mobilenetv2_w035", None)
    if mbv2 is not None:
        builders["mobilenetv2_w035@64"] = lambda: mbv2(resolution=64)
    if names:
        unknown = set(names) - builders.keys()
        if unknown:
            raise SystemExit(f"unknown models {sorted(unknown)}; known: {sorted(builders)}")
        return {n: builders[n] for n in names}
    if quick:
        builders.pop("mobilenetv2_w035@64", None)
    return builders


def bench_model(name: str, model, cfg: argparse.Namespace, work: Path) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import onnx

    import tte
    from benchmarks.jax_models import make_train_step
    from tests.models import input_shape, num_classes

    row: dict = {"model": name}
    rng = np.random.default_rng(0)
    shape = input_shape(model)
    xs = [rng.standard_normal(shape).astype(np.float32) for _ in range(N_SAMPLES)]
    ys = [int(v) for v in rng.integers(0, num_classes(model), N_SAMPLES)]
    samples = work / f"{name}.npz"
    np.savez(samples, xs=np.stack(xs), ys=np.asarray(ys, np.int32))
    model_path = work / f"{name}.onnx"
    onnx.save(model, model_path)

    # --- TTE: compile, generate C, build with cffi (fresh build cache: honest build time)
    t0 = time.perf_counter()
    prog = tte.compile(model, update="full", optimizer={"name": "sgd", "lr": LR,
                                                        "momentum": MOMENTUM})
    runner = prog.build(out_dir=str(work / f"{name}_c"))
    row["tte_build_s"] = time.perf_counter() - t0
    mem = runner.project.memory
    row.update(arena_bytes=mem["arena_bytes"], sram_bytes=mem["sram_bytes"],
               sram=mem["sram"], flash_bytes=mem["flash_bytes"])
    row["trainable_params"] = int(sum(prog.training_graph.values[p].size
                                      for p in prog.trainable))
    ffi, lib, prefix = runner.ffi, runner.lib, runner.project.name
    so_path = sys.modules[lib.__name__.rsplit(".", 1)[0]].__file__  # "<module>.lib"
    c_step = getattr(lib, f"tte_{prefix}_train_step")
    loss_buf = np.zeros(1, np.float32)
    loss_ptr = ffi.cast("float *", loss_buf.ctypes.data)
    x_ptrs = [ffi.cast("const float *", x.ctypes.data) for x in xs]

    # --- JAX: trace + compile on the first call
    t0 = time.perf_counter()
    step, params, mom = make_train_step(model, lr=LR, momentum=MOMENTUM)
    row["jax_trainable_params"] = int(sum(v.size for v in params.values()))
    if row["jax_trainable_params"] != row["trainable_params"]:
        raise RuntimeError(f"{name}: TTE trains {row['trainable_params']} parameters, "
                           f"the JAX step {row['jax_trainable_params']}")
    xj = [jnp.asarray(x) for x in xs]
    yj = [jnp.asarray([y], jnp.int32) for y in ys]
    state = {"p": params, "m": mom}

    def jax_step(i: int):
        out = step(state["p"], state["m"], xj[i], yj[i])
        jax.block_until_ready(out)
        state["p"], state["m"] = out[1], out[2]
        return out[0]

    # the first steps from the same initial state: both sides must compute the same thing
    losses_jax = [float(jax_step(i % N_SAMPLES)) for i in range(CHECK_STEPS)]
    row["jax_compile_s"] = time.perf_counter() - t0
    losses_tte = []
    for i in range(CHECK_STEPS):
        c_step(x_ptrs[i % N_SAMPLES], ys[i % N_SAMPLES], loss_ptr)
        losses_tte.append(float(loss_buf[0]))
    rels = [abs(a - b) / max(abs(b), 1e-12) for a, b in zip(losses_tte, losses_jax)]
    rel = max(rels[:CHECK_ENFORCED])
    row["check"] = {"steps": CHECK_STEPS, "losses_tte": losses_tte, "losses_jax": losses_jax,
                    "rel_diffs": rels, "max_rel_diff": rel}
    if rel > CHECK_RTOL:
        raise RuntimeError(f"{name}: TTE and JAX disagree on the first losses: "
                           f"{losses_tte} vs {losses_jax}")

    # --- latency: interleaved, the order rotating every iteration
    def run_c(i: int) -> None:
        if c_step(x_ptrs[i], ys[i], loss_ptr) != 0:
            raise RuntimeError("train_step failed")

    def run_api(i: int) -> None:
        runner.train_step(xs[i], ys[i])

    sides = [("tte_c", run_c), ("tte_api", run_api), ("jax", jax_step)]
    times: dict[str, list[int]] = {k: [] for k, _ in sides}
    clock = time.perf_counter_ns
    gc.collect()
    gc.disable()
    try:
        warm_end = time.perf_counter() + cfg.warmup_s
        i = 0
        while i < cfg.min_warmup or time.perf_counter() < warm_end:
            for _, f in sides:
                f(i % N_SAMPLES)
            i += 1
        end = time.perf_counter() + cfg.budget_s
        it = 0
        while it < cfg.min_iter or (it < cfg.max_iter and time.perf_counter() < end):
            k = it % N_SAMPLES
            r = it % len(sides)
            for key, f in sides[r:] + sides[:r]:
                t0 = clock()
                f(k)
                times[key].append(clock() - t0)
            it += 1
    finally:
        gc.enable()
    row["latency"] = {k: summarize(v) for k, v in times.items()}
    paired = [j / c for j, c in zip(times["jax"], times["tte_c"])]
    row["ratio_jax_over_tte_c"] = row["latency"]["jax"]["median_us"] / \
        row["latency"]["tte_c"]["median_us"]
    row["ratio_jax_over_tte_api"] = row["latency"]["jax"]["median_us"] / \
        row["latency"]["tte_api"]["median_us"]
    row["paired_ratio"] = {"median": statistics.median(paired), "q1": _quantile(paired, 0.25),
                           "q3": _quantile(paired, 0.75)}
    row["final_loss"] = {"tte": float(loss_buf[0]), "jax": float(jax_step(0))}
    del state, step, params, mom

    # --- memory: separate processes running the same steps from a fresh state
    steps = cfg.mem_steps
    t_res = run_child(["tte", so_path, prefix, str(samples), str(steps)])
    j_res = run_child(["jax", str(model_path), str(samples), str(steps)])
    row["memory_run"] = {"steps": steps, "tte": {k: v for k, v in t_res.items() if k != "losses"},
                         "jax": {k: v for k, v in j_res.items() if k != "losses"}}
    n = min(CHECK_ENFORCED, steps)
    row["memory_run"]["max_rel_loss_diff_first_steps"] = max(
        abs(a - b) / max(abs(b), 1e-12) for a, b in zip(t_res["losses"][:n], j_res["losses"][:n]))
    return row


def measure_baselines(repeats: int) -> dict:
    out = {}
    for kind in ("tte", "jax", "jax-init"):
        runs = [run_child(["idle", kind])["peak_rss_kib"] for _ in range(repeats)]
        out[kind] = {"runs_kib": runs, "median_kib": statistics.median(runs)}
    return out


# ----------------------------------------------------------------------------------------
# tables
# ----------------------------------------------------------------------------------------

def _us(s: dict) -> str:
    v, iqr = s["median_us"], s["iqr_us"]
    if v >= 1000:
        return f"{v / 1000:.2f} ms [{iqr / 1000:.2f}]"
    return f"{v:.1f} µs [{iqr:.1f}]"


def _mib(kib: float) -> str:
    return f"{kib / 1024:.1f}"


def tables(rows: list[dict], base: dict) -> tuple[list[str], list[list[str]], list[str],
                                                  list[list[str]]]:
    lat_head = ["model", "trainable params", "TTE C median [IQR]", "TTE API median [IQR]",
                "JAX jit median [IQR]", "JAX / TTE C", "paired ratio [IQR]", "JAX / TTE API",
                "iterations"]
    mem_head = ["model", "TTE arena B", "TTE SRAM B", "TTE proc peak MiB", "TTE Δ MiB",
                "JAX proc peak MiB", "JAX Δ MiB", "JAX Δ vs runtime MiB", "JAX RSS at end MiB",
                "JAX Δ / TTE Δ"]
    lat, mem = [], []
    bt, bj, bji = (base[k]["median_kib"] for k in ("tte", "jax", "jax-init"))
    for r in rows:
        if "error" in r:
            lat.append([r["model"], "error: " + r["error"]] + [""] * (len(lat_head) - 2))
            continue
        L = r["latency"]
        pr = r["paired_ratio"]
        lat.append([r["model"], f"{r['trainable_params']:,}", _us(L["tte_c"]), _us(L["tte_api"]),
                    _us(L["jax"]), f"{r['ratio_jax_over_tte_c']:.2f}",
                    f"{pr['median']:.2f} [{pr['q1']:.2f}–{pr['q3']:.2f}]",
                    f"{r['ratio_jax_over_tte_api']:.2f}", str(L["jax"]["n"])])
        t = r["memory_run"]["tte"]["peak_rss_kib"]
        j = r["memory_run"]["jax"]["peak_rss_kib"]
        j_end = r["memory_run"]["jax"]["final_rss_kib"]
        mem.append([r["model"], f"{r['arena_bytes']:,}", f"{r['sram_bytes']:,}", _mib(t),
                    _mib(t - bt), _mib(j), _mib(j - bj), _mib(j - bji), _mib(j_end),
                    f"{(j - bj) / max(t - bt, 1):.0f}x"])
    return lat_head, lat, mem_head, mem


def _plain(head: list[str], body: list[list[str]]) -> str:
    w = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    fmt = lambda row: "  ".join(str(c).rjust(w[i]) if i else str(c).ljust(w[i])  # noqa: E731
                                for i, c in enumerate(row))
    return "\n".join([fmt(head), "  ".join("-" * x for x in w)] + [fmt(r) for r in body])


def _markdown(head: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in body])


def write_markdown(path: Path, result: dict) -> None:
    m, base = result["machine"], result["baselines_rss"]
    lat_head, lat, mem_head, mem = tables(result["models"], base)
    flash = ("TTE flash is 0 for every model here: under a full update every weight is "
             "trainable and lives in SRAM." if all(r.get("flash_bytes", 0) == 0
                                                   for r in result["models"]) else
             "TTE flash (frozen weights, constants) is in the JSON.")
    checks = ", ".join(f"{r['model']} {r['check']['max_rel_diff']:.1e}"
                       for r in result["models"] if "check" in r)
    text = f"""# Host training step: TTE generated C vs jax.jit

Command: `{result['command']}` ({result['mode']} run, {result['elapsed_s']:.0f} s)

Machine: {m['cpu']} ({m['logical_cpus']} logical CPUs, {m['simd']}), Linux {m['kernel']};
pinned to core {m['pinned_core']}. Python {m['python']}, numpy {m['numpy']}, jax/jaxlib
{m['jax']}/{m['jaxlib']}, onnx {m['onnx']}, cffi {m['cffi']}; {m['cc']}.
TTE C flags: `{m['tte_c_flags']}` (no `-march`). XLA_FLAGS: `{m['xla_flags']}`.
Commit {m['git_commit']}, {m['date']}.

Step: batch 1, float32, softmax cross-entropy, full backward, SGD lr {LR} momentum
{MOMENTUM}; BatchNormalization folded into the preceding conv on both sides (TTE's default
`fold_batchnorm=True`). The same {N_SAMPLES} random samples are cycled. The first
{CHECK_ENFORCED} losses of TTE and JAX from the same initial weights (the second one after
one SGD step, so it checks the gradients too) agree to a relative
{max(r['check']['max_rel_diff'] for r in result['models'] if 'check' in r):.1e} at worst
({checks}); all {CHECK_STEPS} per-step differences are in the JSON.

## Latency per training step (one core, interleaved)

`TTE C`: the generated `train_step` called through its cffi pointer. `TTE API`: the same C
through `Runner.train_step` (Python input checks included). `JAX jit`: the jitted step with
donated buffers, `block_until_ready` on loss, parameters and momentum. Median and
interquartile range; ratio > 1 means TTE is faster. "paired ratio" is the median (and
IQR) of JAX/TTE C over the same loop iteration.

{_markdown(lat_head, lat)}

## Memory

TTE arena: the planned activation arena (shared by training step and inference). TTE
SRAM: arena + trainable parameters + momentum + input buffer, as reported by the planner.
Process peaks are the peak RSS (`VmHWM` of /proc/self/status) of a separate process running
{result['config']['mem_steps']} steps from a fresh state: for TTE it loads only the built C
extension (numpy + cffi); for JAX it imports jax, traces, compiles and runs the step. Δ is
that peak minus the peak of an idle process importing the same modules (median of
{len(base['tte']['runs_kib'])}): idle TTE-side {_mib(base['tte']['median_kib'])} MiB, idle
JAX-side {_mib(base['jax']['median_kib'])} MiB after imports, {_mib(base['jax-init']['median_kib'])}
MiB with the XLA CPU client initialised ("Δ vs runtime"). "RSS at end" is the JAX process's
resident size after the last step (compiler memory partly returned). Python itself is in
every process figure. {flash}

{_markdown(mem_head, mem)}
"""
    path.write_text(text + "\n## Caveats\n\n" + "\n".join(f"* {c}" for c in CAVEATS) + "\n")


CAVEATS = [
    "Host x86 latency says nothing direct about a microcontroller; it compares the generated "
    "C against XLA on the same step, one thread each.",
    "TTE's C is portable scalar C99 built with -O2 and no -march (no AVX); XLA compiles for "
    "the host CPU with its vector units. Neither side uses more than one core.",
    "The JAX figure includes jit dispatch (pytree flattening of every parameter and momentum "
    "buffer, ~µs each) and block_until_ready; for the smallest models this overhead is most "
    "of the step. TTE C includes one cffi call; TTE API adds Python input validation.",
    "Process RSS includes the Python interpreter and the imported modules; Δ subtracts an "
    "idle process, but page granularity, allocator caches and XLA's compiler working set "
    "(compilation happens in the measured JAX process) remain. The TTE process loads a .so "
    "whose static arena/parameters count only when touched.",
    "TTE arena/SRAM are planned byte counts for a device, not measured host memory.",
    "lr 0.01 with momentum 0.9 on random labels drives the deeper models' losses up; the "
    "trajectories of TTE and JAX diverge after a few steps by float rounding (checked to "
    "agree on the first steps). Kernel cost does not depend on the values except through "
    "denormals (flush-to-zero is not controlled here on either side).",
    "The machine is shared and noisy: other processes run on both cores, so the pinned core "
    "is time-sliced and a step is sometimes preempted for a few ms (hence wide IQRs on the "
    "millisecond-scale steps). The three runners are interleaved so preemption hits all of "
    "them; medians are robust to it, means are not (the JSON also has p5/p95/min).",
]


# ----------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: small models, few steps")
    ap.add_argument("--models", nargs="+", help="model names (default: all)")
    ap.add_argument("--cpu", type=int, help="core to pin to (default: the last allowed one)")
    ap.add_argument("--out", type=Path, help="output stem (default results/host_step[_quick])")
    ap.add_argument("--budget-s", type=float, help="timed seconds per model")
    ap.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    cfg = ap.parse_args(argv)

    if cfg.child:
        kind, *rest = cfg.child
        if kind == "tte":
            child_tte(rest[0], rest[1], rest[2], int(rest[3]))
        elif kind == "jax":
            child_jax(rest[0], rest[1], int(rest[2]))
        else:
            child_idle(rest[0])
        return 0

    core = cfg.cpu if cfg.cpu is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})  # children inherit it
    if cfg.quick:
        cfg.warmup_s, cfg.min_warmup, cfg.min_iter, cfg.max_iter = 0.2, 3, 20, 300
        cfg.budget_s = cfg.budget_s or 1.0
        cfg.mem_steps, base_repeats = 5, 1
    else:
        cfg.warmup_s, cfg.min_warmup, cfg.min_iter, cfg.max_iter = 2.0, 10, 100, 5000
        cfg.budget_s = cfg.budget_s or 30.0
        cfg.mem_steps, base_repeats = 50, 3
    out = cfg.out or RESULTS / ("host_step_quick" if cfg.quick else "host_step")

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tte-bench-") as tmp:
        work = Path(tmp)
        # a private cffi build cache: every model is compiled by gcc in this run
        os.environ["TTE_BUILD_CACHE"] = str(work / "cffi")
        builders = model_builders(cfg.models, cfg.quick)
        print(f"pinned to core {core}; models: {', '.join(builders)}", flush=True)
        machine = machine_info(core)
        base = measure_baselines(base_repeats)
        rows = []
        for name, build in builders.items():
            t0 = time.perf_counter()
            try:
                row = bench_model(name, build(), cfg, work)
            except Exception as e:  # a model TTE or the JAX evaluator cannot run: say so
                row = {"model": name, "error": f"{type(e).__name__}: {e}".splitlines()[0]}
            rows.append(row)
            gc.collect()
            status = row.get("error") or (
                f"TTE C {row['latency']['tte_c']['median_us']:.1f} µs, "
                f"JAX {row['latency']['jax']['median_us']:.1f} µs, "
                f"ratio {row['ratio_jax_over_tte_c']:.2f}")
            print(f"  {name}: {status} ({time.perf_counter() - t0:.0f} s)", flush=True)

    command = " ".join(["python", "benchmarks/host_step.py"] + (argv or sys.argv[1:]))
    if os.environ.get("MAKELEVEL") and not cfg.quick and not cfg.models:
        command = "make bench"
    result = {"command": command,
              "mode": "quick" if cfg.quick else "full",
              "elapsed_s": time.perf_counter() - started, "machine": machine,
              "config": {"lr": LR, "momentum": MOMENTUM, "batch": 1, "dtype": "float32",
                         "fold_batchnorm": True, "samples": N_SAMPLES,
                         "warmup_s": cfg.warmup_s, "budget_s": cfg.budget_s,
                         "min_iter": cfg.min_iter, "max_iter": cfg.max_iter,
                         "mem_steps": cfg.mem_steps},
              "baselines_rss": base, "models": rows, "caveats": CAVEATS}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    good = [r for r in rows if "error" not in r]
    if good:
        write_markdown(out.with_suffix(".md"), result)
    lat_head, lat, mem_head, mem = tables(rows, base)
    print()
    print(_plain(lat_head, lat))
    print()
    print(_plain(mem_head, mem))
    print(f"\nwrote {out.with_suffix('.md')} and .json ({result['elapsed_s']:.0f} s)")
    return 1 if len(good) < len(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
