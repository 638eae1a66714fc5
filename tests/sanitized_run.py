"""Shared setup of tests/test_host_c.py, and the child process it runs under ASan + UBSan.

A cffi extension built with -fsanitize=address cannot be loaded into an ordinary Python:
the ASan runtime must come first in the process, so the sanitized runs happen in a child
started with LD_PRELOAD=<libasan.so> <libubsan.so> and ASAN_OPTIONS=detect_leaks=0
(``sanitizer_env()``; ``run_child()`` starts one). Usage of the child:

    python tests/sanitized_run.py train MODEL   # prog.build(sanitize=True), STEPS steps against
                                                # prog.reference(); exit 0 only if every loss,
                                                # parameter and the forward output match
    python tests/sanitized_run.py int8 NAME     # int8 training of the MCU backbone NAME
                                                # (32x32 input, int8 weights and biases with
                                                # master copies, fp32 head), as `train`
    python tests/sanitized_run.py probe KIND    # a small C file with a deliberate bug, built by
                                                # targets.host.cbuild.build_c with the runner's
                                                # SANITIZE_FLAGS; KIND in PROBES

The train child prints one JSON line (errors, timings, and which sanitizer runtimes are mapped
into the process) and exits 0, or 3 on a mismatch; a sanitizer report aborts it earlier
(-fno-sanitize-recover=all turns every UBSan finding into an exit, ASan exits on the first
error), with a non-zero code and the report on stderr.

Nothing here imports jax or pytest, so the child stays small.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import tte  # noqa: E402
from targets.host.cbuild import CACHE_DIR, build_c  # noqa: E402
from targets.host.runner import SANITIZE_FLAGS  # noqa: E402
from tests.models import MODELS, input_shape, mobilenetv2_w035, num_classes  # noqa: E402

STEPS = 10
LR, MOMENTUM = 0.05, 0.9
MBV2 = "mobilenetv2_w035"
# lr 0.05 makes the 64x64 MobileNetV2 diverge (loss 4.2 -> 35 -> 110 -> 190 in three steps; the
# stem gradient sums over 1024 output pixels). At lr 3e-5 .. 1e-3 batch-1 training is
# chaotic: one float32 rounding that flips a ReLU6 gate perturbs every upstream gradient, and
# the difference then grows 10-30x per step, so two honest float32 implementations (the numpy
# reference, JAX in float32) part from each other and from the float64 oracle within 10 steps.
# At 1e-5 the 10 steps stayed smooth for every sample seed tried (0..3): C, the reference and
# the oracle agree to 1e-7 .. 5e-6, while training moves the parameters by up to ~1% (the
# tests assert >= 1e-3, 100x the tolerance).
MBV2_LR = 1e-5
BUILDERS = {**MODELS, MBV2: mobilenetv2_w035}
ALL_MODELS = list(BUILDERS)

# Every comparison is per tensor: err = max|got - want| / max|want| (over the whole tensor;
# the STEPS losses of a run are compared as one tensor). Relative to the tensor's largest
# entry, not elementwise, so a near-zero element does not demand more than float32 can give.
TOL = 1e-5
# The logits of the 53-layer MobileNetV2 are only good to ~1e-5 in float32: JAX's own float32
# forward differs from its float64 one by up to 1.2e-5 on fresh inputs, and one float32 ulp
# of BN folding alone (TTE folds in float32, the oracle in float64) moves them by 3e-6.
# Measured: C vs reference up to 1.7e-5, C vs the float64 oracle up to 2.2e-5.
MBV2_FORWARD_TOL = 5e-5

PROJECTS = CACHE_DIR.parent / "test_host_c"


def lr_for(name: str) -> float:
    return MBV2_LR if name == MBV2 else LR


def forward_tol(name: str) -> float:
    return MBV2_FORWARD_TOL if name == MBV2 else TOL


def optimizer(name: str, **overrides) -> dict:
    return {"name": "sgd", "lr": lr_for(name), "momentum": MOMENTUM, **overrides}


def project_dir(key: str) -> str:
    """A fixed directory per configuration, so the generated project can be inspected after a
    run (the build cache is keyed by content, so any directory reuses the build)."""
    return str(PROJECTS / key)


def samples(model, n: int, seed: int = 0, loss: str = "cross_entropy"):
    """n training inputs with labels (or mse targets of the logits' shape), and a test input."""
    rng = np.random.default_rng(seed)
    shape = input_shape(model)
    xs = [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]
    if loss == "cross_entropy":
        targets = [int(v) for v in rng.integers(0, num_classes(model), n)]
    else:
        targets = [rng.standard_normal((1, num_classes(model))).astype(np.float32)
                   for _ in range(n)]
    return xs, targets, rng.standard_normal(shape).astype(np.float32)


def rel_err(got, want) -> float:
    """max|got - want| / max|want| in float64 (absolute error if want is all zero)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return float("inf")
    scale = np.abs(want).max() if want.size else 0.0
    diff = np.abs(got - want).max() if want.size else 0.0
    return float(diff / scale) if scale > 0 else float(diff)


def run_pair(c, ref, xs, targets, x_test) -> dict:
    """Train the C runner and the reference runner on the same samples; return what to compare."""
    before = c.params()
    losses_c = [c.train_step(x, t) for x, t in zip(xs, targets)]
    losses_ref = [ref.train_step(x, t) for x, t in zip(xs, targets)]
    return {"before": before, "losses_c": losses_c, "losses_ref": losses_ref,
            "params_c": c.params(), "params_ref": ref.params(),
            "forward_c": c.forward(x_test), "forward_ref": ref.forward(x_test)}


def errors_vs_reference(run: dict) -> dict:
    pc, pr = run["params_c"], run["params_ref"]
    return {"loss": rel_err(run["losses_c"], run["losses_ref"]),
            "forward": rel_err(run["forward_c"], run["forward_ref"]),
            "params": {k: rel_err(pc.get(k, np.nan), pr[k]) for k in pr},
            "extra_params": sorted(set(pc) - set(pr))}


def failures(errs: dict, *, tol: float = TOL, fwd_tol: float = TOL) -> list[str]:
    bad = []
    if not errs["loss"] <= tol:
        bad.append(f"losses: rel err {errs['loss']:.3g} > {tol:g}")
    if not errs["forward"] <= fwd_tol:
        bad.append(f"forward: rel err {errs['forward']:.3g} > {fwd_tol:g}")
    bad += [f"param {k}: rel err {e:.3g} > {tol:g}" for k, e in errs["params"].items()
            if not e <= tol]
    if errs.get("extra_params"):
        bad.append(f"params only the C runner has: {errs['extra_params']}")
    return bad


def max_change(run: dict, trainable) -> float:
    """How far training moved the parameters (largest per-tensor relative change)."""
    return max(rel_err(run["params_c"][k], run["before"][k]) for k in trainable)


# --------------------------------------------------------------------------------------------
# starting the child
# --------------------------------------------------------------------------------------------

def sanitizer_env() -> dict:
    cc = os.environ.get("CC", "gcc")
    preload = []
    for lib in ("libasan.so", "libubsan.so"):
        path = subprocess.run([cc, f"-print-file-name={lib}"], capture_output=True,
                              text=True).stdout.strip()
        if not os.path.isabs(path) or not os.path.exists(path):
            raise RuntimeError(f"{cc} has no {lib} ({path!r}); install the sanitizer runtimes")
        preload.append(path)
    env = dict(os.environ)
    env["LD_PRELOAD"] = " ".join(preload + [env["LD_PRELOAD"]] if env.get("LD_PRELOAD")
                                 else preload)
    env["ASAN_OPTIONS"] = "detect_leaks=0"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]]
                                                       if env.get("PYTHONPATH") else []))
    return env


def run_child(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(Path(__file__).resolve()), *args],
                          env=sanitizer_env(), capture_output=True, text=True, timeout=timeout,
                          cwd=str(ROOT))


# --------------------------------------------------------------------------------------------
# the child
# --------------------------------------------------------------------------------------------

def _mapped_runtimes() -> dict:
    maps = Path("/proc/self/maps").read_text()
    return {"asan": "libasan" in maps, "ubsan": "libubsan" in maps}


def _instrumented(lib) -> dict:
    """Whether the loaded extension itself calls into ASan / UBSan (its symbol references)."""
    path = next(Path(m.__file__) for n, m in list(sys.modules.items())
                if n.startswith("_tte_") and getattr(m, "lib", None) is lib)
    data = path.read_bytes()
    return {"asan": b"__asan_report_" in data, "ubsan": b"__ubsan_handle_" in data}


def train_child(name: str) -> int:
    model = BUILDERS[name]()
    prog = tte.compile(model, optimizer=optimizer(name))
    t0 = time.perf_counter()
    c = prog.build(sanitize=True, out_dir=project_dir(f"{name}-sanitized"))
    build_s = time.perf_counter() - t0
    xs, ys, x_test = samples(model, STEPS)
    t0 = time.perf_counter()
    run = run_pair(c, prog.reference(), xs, ys, x_test)
    run_s = time.perf_counter() - t0
    errs = errors_vs_reference(run)
    bad = failures(errs, fwd_tol=forward_tol(name))
    worst = max(errs["params"].items(), key=lambda kv: kv[1])
    print(json.dumps({"model": name, "loss_err": errs["loss"], "forward_err": errs["forward"],
                      "worst_param": worst[0], "worst_param_err": worst[1],
                      "moved": max_change(run, prog.trainable), "build_s": build_s,
                      "run_s": run_s, "runtimes": _mapped_runtimes(),
                      "instrumented": _instrumented(c.lib), "failures": bad}))
    return 3 if bad else 0


MCU_DIR = ROOT.parent / "shared" / "models" / "mcu_imagenet"


def int8_child(name: str) -> int:
    prog = tte.compile(MCU_DIR / f"{name}.pkl", num_classes=2, input_size=32,
                       optimizer={"lr": 1e-3}, master_weights=True, update="bias")
    layers = [p for p in prog.training_graph.params() if p.endswith(".weight")][-4:]
    prog = tte.compile(MCU_DIR / f"{name}.pkl", num_classes=2, input_size=32,
                       optimizer={"lr": 1e-3}, master_weights=True,
                       update=layers + [w.replace(".weight", ".bias") for w in layers])
    c = prog.build(sanitize=True, out_dir=project_dir(f"{name}-int8-sanitized"))
    rng = np.random.default_rng(0)
    xs = [rng.uniform(-1, 1, (3, 32, 32)).astype(np.float32) for _ in range(4)]
    run = run_pair(c, prog.reference(), xs, [0, 1, 0, 1], xs[0])
    errs = errors_vs_reference(run)
    bad = failures(errs)
    bad += [f"param {k} differs" for k, v in run["params_ref"].items()
            if v.dtype != np.float32 and not np.array_equal(v, run["params_c"][k])]
    print(json.dumps({"model": name, "loss_err": errs["loss"], "runtimes": _mapped_runtimes(),
                      "instrumented": _instrumented(c.lib), "failures": bad}))
    return 3 if bad else 0


PROBE_C = r"""
#include <stdint.h>
#include <stdlib.h>
#include "probe.h"

static float table[4] = {1.0f, 2.0f, 3.0f, 4.0f};
/* pointers whose object the compiler cannot see (as the generated code's arena + offset), so
   UBSan's object-size check stays silent and the report must come from ASan's redzones */
float *table_ptr = table;

float probe_pointer_read(int32_t i) { return table_ptr[i]; }

float probe_array_read(int32_t i) { return table[i]; }

float probe_heap_read(int32_t i)
{
    float *p = malloc(4 * sizeof *p), *volatile q = p, v;
    int32_t k;
    if (!p) return 0.0f;
    for (k = 0; k < 4; ++k) p[k] = (float)k;
    v = q[i];
    free(p);
    return v;
}

int32_t probe_add(int32_t a, int32_t b) { return a + b; }

int32_t probe_shift(int32_t a, int32_t s) { return a << s; }
"""
PROBE_H = """float probe_pointer_read(int32_t i);
float probe_array_read(int32_t i);
float probe_heap_read(int32_t i);
int32_t probe_add(int32_t a, int32_t b);
int32_t probe_shift(int32_t a, int32_t s);
"""
INT32_MAX = 2**31 - 1
# kind -> (call, what the sanitizer must report (None: a clean call that must return),
#          flags added to the runner's SANITIZE_FLAGS)
PROBES = {
    "global-overflow": (lambda lib: lib.probe_pointer_read(4),
                        "ERROR: AddressSanitizer: global-buffer-overflow", []),
    "heap-overflow": (lambda lib: lib.probe_heap_read(4),
                      "ERROR: AddressSanitizer: heap-buffer-overflow", []),
    "array-bounds": (lambda lib: lib.probe_array_read(4),
                     "runtime error: index 4 out of bounds for type 'float [4]'", []),
    "shift": (lambda lib: lib.probe_shift(1, 33), "runtime error: shift exponent 33", []),
    "signed-overflow": (lambda lib: lib.probe_add(INT32_MAX, 1),
                        "runtime error: signed integer overflow", []),
    # the same with -fno-wrapv after the flags: Python's own CFLAGS (sysconfig) carry -fwrapv,
    # which setuptools puts on every extension's command line and which makes signed overflow
    # defined, so UBSan cannot report it unless it is switched off again
    "signed-overflow-nowrapv": (lambda lib: lib.probe_add(INT32_MAX, 1),
                                "runtime error: signed integer overflow", ["-fno-wrapv"]),
    "clean": (lambda lib: (lib.probe_pointer_read(3) + lib.probe_array_read(3)
                           + lib.probe_heap_read(3) + lib.probe_shift(1, 30)
                           + lib.probe_add(INT32_MAX - 1, 1)), None, []),
}


def probe_child(kind: str) -> int:
    call, _, extra = PROBES[kind]
    src_dir = PROJECTS / "sanitizer-probe"
    src_dir.mkdir(parents=True, exist_ok=True)
    for fname, text in (("probe.c", PROBE_C), ("probe.h", PROBE_H)):
        path = src_dir / fname
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    flags = list(SANITIZE_FLAGS) + extra
    _, lib = build_c(PROBE_H, [src_dir / "probe.c"], header='#include "probe.h"',
                     include_dirs=[src_dir], extra_flags=flags, link_flags=flags[1:])
    print(json.dumps({"probe": kind, "runtimes": _mapped_runtimes()}), flush=True)
    value = call(lib)
    print(json.dumps({"probe": kind, "returned": float(value)}), flush=True)
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "train" and argv[1] in BUILDERS:
        return train_child(argv[1])
    if len(argv) == 2 and argv[0] == "int8" and (MCU_DIR / f"{argv[1]}.pkl").exists():
        return int8_child(argv[1])
    if len(argv) == 2 and argv[0] == "probe" and argv[1] in PROBES:
        return probe_child(argv[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
