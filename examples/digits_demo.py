"""Demo: compile a small CNN (an ONNX file) to C and train it on real handwritten digits.

The digits are scikit-learn's 1,797 8x8 scans (shipped inside the wheel); training runs
one sample at a time, as on a microcontroller, in the generated C built for this host.
"""
from __future__ import annotations

import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits

import tte


def digits_cnn(seed: int = 0) -> onnx.ModelProto:
    """conv3x3(8)-relu-maxpool-conv3x3(16)-relu-flatten-linear(10), He init."""
    rng = np.random.default_rng(seed)

    def he(*shape: int) -> np.ndarray:
        fan_in = int(np.prod(shape[1:]))
        return (rng.normal(size=shape) * np.sqrt(2 / fan_in)).astype(np.float32)

    inits = {"conv1.weight": he(8, 1, 3, 3), "conv1.bias": np.zeros(8, np.float32),
             "conv2.weight": he(16, 8, 3, 3), "conv2.bias": np.zeros(16, np.float32),
             "fc.weight": he(10, 16 * 4 * 4), "fc.bias": np.zeros(10, np.float32)}
    nodes = [
        helper.make_node("Conv", ["x", "conv1.weight", "conv1.bias"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2.weight", "conv2.bias"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Flatten", ["r2"], ["f"]),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "digits_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def accuracy(runner, xs: np.ndarray, ys: np.ndarray) -> float:
    return float(np.mean([runner.forward(x).argmax() == y for x, y in zip(xs, ys)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=2800, help="training steps (batch 1; 2 epochs)")
    ap.add_argument("--out", default="out/demo", help="where the model and report go")
    args = ap.parse_args()

    digits = load_digits()
    x = (digits.images / 16.0 - 0.5).astype(np.float32)[:, None]  # [n, 1, 8, 8] in [-0.5, 0.5]
    y = digits.target
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:1400], order[1400:]

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "digits_cnn.onnx")
    onnx.save(digits_cnn(), path)
    prog = tte.compile(path, optimizer={"name": "sgd", "lr": 0.005, "momentum": 0.9})
    with open(os.path.join(args.out, "training_graph.txt"), "w") as f:
        f.write(str(prog.training_graph) + "\n")
    runner = prog.build(out_dir=args.out)  # the generated C, compiled for this host
    mem, c_file = runner.project.memory, runner.project.source
    print(f"compiled {path}: {len(prog.training_graph.nodes)} nodes, "
          f"{len(prog.trainable)} trainable tensors -> {c_file}")
    print(f"memory: arena {mem['arena_bytes']:,} B, SRAM {mem['sram_bytes']:,} B "
          f"(graph in {args.out}/training_graph.txt)")
    print(f"held-out accuracy before training: {accuracy(runner, x[test], y[test]):.1%}")
    window = []
    for step in range(1, args.steps + 1):
        i = train[step % len(train)]
        window.append(runner.train_step(x[i], int(y[i])))
        if step % 400 == 0:
            print(f"step {step:5d}  mean loss of the last 400 steps {np.mean(window):.3f}")
            window = []
    print(f"held-out accuracy after {args.steps} steps: {accuracy(runner, x[test], y[test]):.1%} "
          f"({len(test)} digits never trained on)")


if __name__ == "__main__":
    main()
