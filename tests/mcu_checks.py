"""Shared checks of firmware runs on the MCU targets against the host C."""
from __future__ import annotations

import numpy as np

import tte
from targets.firmware import fnv1a


def equal_to_host(prog: tte.Program, target: str, xs: np.ndarray, labels: np.ndarray,
                  **firmware) -> "tte.program.Runner":
    """N steps in QEMU give the host C's losses and parameters bit for bit (same warning
    and -ffp-contract=off flags; libm calls are rounded through double, kernels_c/loss.c);
    returns the MCU runner."""
    mcu = prog.build(target=target, **firmware)
    losses = mcu.train_steps(xs, labels)
    host = prog.build()
    want = np.array([host.train_step(x, y) for x, y in zip(xs, labels)], np.float32)
    np.testing.assert_array_equal(losses, want)
    got, ref = mcu.params(), host.params()
    for name in ref:
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)
    assert mcu.result.checksum == fnv1a(mcu.result.params)
    return mcu
