#!/usr/bin/env python
"""Instructions per training step on the MCU targets, from QEMU under -icount shift=0.

Every figure is a count, not a time: RISC-V reads minstret (exact); Cortex-M reads the
SysTick, 40 instructions per tick (targets/cortex_m/__init__.py). Firmware built with
TTE_PROFILE counts every node of the last step (targets/firmware/main.c.in); MACs come from
the IR (OpDef.macs). Three tables:

1. A conv training step, as PULP-TrainLib measures FP16 against FP32 (it reports 1.72x):
   the second 3x3 convolution (16 -> 16 channels, 16x16 map) of a small CNN trained in
   full, its forward, input gradient and weight gradient (fused with its SGD update). On
   the scalar core (rv32): fp32, fp16 on the portable path (TTE_SCALAR: float arithmetic and
   conversions) and fp16 on packed pairs (v2f16, native Zfh); on the vector core (rv32v):
   fp32 and fp16 on RVV. Each is set beside fp32 on the same core. Two layer sizes: 16
   channels and 32 channels, on a 16x16 map (CONV_SHAPES says why).
2. Whole steps per target: instructions, MACs, MAC per instruction, and the linked ELF's
   flash and SRAM beside report.json's (the ELF adds code, newlib/picolibc and the stack).
3. Per layer kind and direction for MCUNet-5FPS (int8, "49kb" scheme) on the Cortex-M4,
   with the DSP extension and without (TTE_SCALAR).

    python benchmarks/mcu_cost.py            # writes results/mcu_cost.md and .json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import tte  # noqa: E402
from targets.firmware import default_samples  # noqa: E402
from targets.firmware.cost import cost_rows  # noqa: E402
from tte.cost import node_costs  # noqa: E402
from targets.firmware.qemu import elf_sizes  # noqa: E402

MODELS = ROOT.parent / "shared" / "models"
MCUNET = MODELS / "mcu_imagenet" / "mcunet-5fps.pkl"
SCHEME = ROOT / "tte" / "schemes" / "mcunet-5fps-49kb.json"
KWS = MODELS / "mlperf_tiny" / "kws_ref_model.tflite"
PULP_SPEEDUP = 1.72
# QEMU counts a vector instruction as one whatever its lanes (VLEN 128, LMUL 4: 16 floats or
# 32 halves), so fp16's gain shows where a layer has more outputs than fp32's lanes hold
CONV_SHAPES = ((16, 16), (32, 16))
STEPS = 2
OPT = {"lr": 0.01}


def conv_cnn(channels: int = 16, hw: int = 16, seed: int = 0) -> onnx.ModelProto:
    """x[1,8,hw,hw] -> conv 3x3 8->C -> relu -> conv 3x3 C->C -> relu -> mean -> linear 10."""
    rng = np.random.default_rng(seed)
    c = channels

    def init(name, shape, fan_in):
        return numpy_helper.from_array(
            rng.normal(0, (2 / fan_in) ** 0.5, shape).astype(np.float32), name)
    inits = [init("w1", (c, 8, 3, 3), 72), init("b1", (c,), 72),
             init("w2", (c, c, 3, 3), 9 * c), init("b2", (c,), 9 * c),
             init("w3", (10, c), c), init("b3", (10,), c)]
    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], **conv),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], **conv),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "conv_cnn",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             [1, 8, hw, hw])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def profile(prog: tte.Program, target: str, defines: tuple[str, ...] = ()):
    run = prog.build(target=target, profile=True, defines=defines)
    run.train_steps(*default_samples(run.info, STEPS))
    return run


def conv_step_table(channels: int, hw: int) -> tuple[list[str], list[dict]]:
    builds = [("fp32 scalar", "rv32", "fp32", ()),
              ("fp16 portable (TTE_SCALAR)", "rv32", "fp16", ("TTE_SCALAR",)),
              ("fp16 v2f16 on Zfh", "rv32", "fp16", ()),
              ("fp32 RVV", "rv32v", "fp32", ()), ("fp16 RVV (Zvfh)", "rv32v", "fp16", ())]
    results = []
    for accumulate in ("fp16", "fp32"):
        for label, target, precision, defines in builds:
            if precision == "fp32" and accumulate == "fp32":
                continue  # one fp32 row per core
            kwargs = {"precision": "fp16", "accumulate": accumulate} if precision == "fp16" \
                else {}
            prog = tte.compile(conv_cnn(channels, hw), update="full", optimizer=OPT, **kwargs)
            run = profile(prog, target, defines)
            g = prog.training_graph
            # conv2 = the convolution that reads w2, and the gradients that read or update it
            conv2 = next(n for n in g.nodes if n.op == "conv2d" and n.inputs[0] != g.inputs[0])
            nodes = [i for i, n in enumerate(g.nodes) if conv2.inputs[1] in n.inputs]
            counts = run.result.node_instructions
            rows = cost_rows(node_costs(g), {i: counts[i] for i in nodes})
            entry = {"build": label, "target": target, "accumulate":
                     accumulate if precision == "fp16" else "fp32",
                     "step": int(run.result.step_instructions[-1])}
            for r in rows:
                if r.nodes and r.instructions:
                    entry[r.direction] = {"instructions": r.instructions, "macs": r.macs}
            results.append(entry)
    lines = ["| build | accumulate | forward | input gradient | weight gradient + SGD | "
             "conv total | fp32 on the core / this | whole step |",
             "|---|---|---|---|---|---|---|---|"]
    dirs = ("forward", "input gradient", "weight gradient")

    def total(e):
        return sum(e[d]["instructions"] for d in dirs)
    for e in results:
        base = next(b for b in results if b["target"] == e["target"] and
                    b["build"].startswith("fp32"))
        cells = [f"{e[d]['instructions']:,} ({e[d]['macs'] / e[d]['instructions']:.2f})"
                 for d in dirs]
        lines.append(f"| {e['build']} ({e['target']}) | {e['accumulate']} | {' | '.join(cells)}"
                     f" | {total(e):,} | {total(base) / total(e):.2f}x | {e['step']:,} |")
    macs = results[0]["forward"]["macs"]
    lines += ["", f"Each cell: instructions (MAC per instruction); every direction has "
                  f"{macs:,} MACs. PULP-TrainLib reports {PULP_SPEEDUP}x FP16 over FP32 on "
                  f"its conv training step (cycles on a PULP cluster core with packed-SIMD "
                  f"FP16 instructions)."]
    return lines, results


def _model_rows(name: str, prog: tte.Program, builds) -> list[dict]:
    rows = []
    for target, defines in builds:
        run = profile(prog, target, defines)
        sizes = elf_sizes(run.firmware)
        g = prog.training_graph
        macs = sum(r.macs for r in cost_rows(node_costs(g), {}))
        step = int(run.result.step_instructions[-1])
        mem = run.project.memory
        rows.append({"model": name, "target": target + (" " + " ".join(defines) if defines
                                                        else ""),
                     "instructions": step, "macs": macs, "elf_flash": sizes["flash"],
                     "elf_sram": sizes["sram"], "report_flash": mem["flash_bytes"],
                     "report_sram": mem["sram_bytes"],
                     "rows": [vars(r) for r in cost_rows(node_costs(g),
                                                         run.result.node_instructions)]})
    return rows


def whole_step_table(quick: bool) -> tuple[list[str], list[dict]]:
    from_cnn = tte.compile(conv_cnn(), update="full", optimizer=OPT)
    every = [("cortex-m4", ()), ("cortex-m7", ()), ("rv32", ()), ("rv32v", ())]
    rows = _model_rows("small CNN, fp32, full update", from_cnn, every)
    size = 64 if quick else 128
    mcunet = tte.compile(MCUNET, num_classes=10, head="int8", int8_input=True,
                         input_size=size, update=str(SCHEME), optimizer=OPT,
                         **({} if quick else {"patch": "auto"}))
    rows += _model_rows(f"MCUNet-5FPS int8 49kb {size}x{size}", mcunet,
                        [("cortex-m4", ()), ("cortex-m4", ("TTE_SCALAR",)), ("cortex-m7", ()),
                         ("rv32", ())])
    try:
        kws = tte.compile(str(KWS), update="bias", optimizer=OPT)
    except tte.TTEError as e:  # int8 FULLY_CONNECTED training may be missing
        print(f"skipping {KWS.name}: {e}")
    else:
        rows += _model_rows("KWS DS-CNN int8 (MLPerf Tiny), biases", kws,
                            [("cortex-m4", ()), ("rv32", ())])
    lines = ["| model | target | instructions/step | MACs/step | MAC/instr | ELF flash "
             "(report) | ELF SRAM (report) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['target']} | {r['instructions']:,} | {r['macs']:,} | "
                     f"{r['macs'] / r['instructions']:.3f} | {r['elf_flash']:,} "
                     f"({r['report_flash']:,}) | {r['elf_sram']:,} ({r['report_sram']:,}) |")
    return lines, rows


def per_op_table(rows: list[dict]) -> list[str]:
    mcu = [r for r in rows if r["model"].startswith("MCUNet") and
           r["target"].startswith("cortex-m4")]
    if len(mcu) < 2:
        return []
    dsp, scalar = (next(r for r in mcu if ("TTE_SCALAR" in r["target"]) == s)
                   for s in (False, True))
    lines = [f"{dsp['model']} on the Cortex-M4, per layer kind and direction (fast paths: "
             "DSP SMLAD, single-precision requantisation; TTE_SCALAR: the portable code):", "",
             "| layer | direction | nodes | MACs | instructions, fast paths (MAC/instr) | "
             "instructions TTE_SCALAR | speed-up |", "|---|---|---|---|---|---|---|"]
    for a, b in zip(dsp["rows"], scalar["rows"]):
        if not a["instructions"] or a["instructions"] < 0.005 * dsp["instructions"]:
            continue
        mpi = f" ({a['macs'] / a['instructions']:.3f})" if a["macs"] else ""
        lines.append(f"| {a['kind']} | {a['direction']} | {a['nodes']} | {a['macs']:,} | "
                     f"{a['instructions']:,}{mpi} | {b['instructions']:,} | "
                     f"{b['instructions'] / a['instructions']:.2f}x |")
    lines.append("(rows under 0.5% of the step left out)")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="MCUNet at 64x64 without patches")
    args = ap.parse_args()
    conv_lines, conv = [], []
    for channels, hw in CONV_SHAPES:
        lines, rows = conv_step_table(channels, hw)
        conv_lines += [f"### conv 3x3, {channels} -> {channels} channels, {hw}x{hw} map", "",
                       *lines, ""]
        conv += [{"channels": channels, "hw": hw, **r} for r in rows]
    step_lines, steps = whole_step_table(args.quick)
    text = "\n".join(["# Instructions per training step on the MCU targets", "",
                      "Reproduce: `python benchmarks/mcu_cost.py` (QEMU 7.2, -icount shift=0).",
                      "", "## 1. Conv training step: FP16 against FP32", "", *conv_lines, "",
                      "## 2. Whole steps", "", *step_lines, "", "## 3. Per layer kind", "",
                      *per_op_table(steps), ""])
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "mcu_cost.md").write_text(text)
    (out / "mcu_cost.json").write_text(json.dumps({"conv_step": conv, "steps": steps},
                                                  indent=1))
    print(text)


if __name__ == "__main__":
    main()
