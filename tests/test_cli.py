"""The `tte` command line: ops, show, compile, help and error exits."""
import json
import subprocess
import sys

import onnx
import pytest

from tests.models import MODELS
from tte.cli import main


@pytest.fixture(scope="module")
def lenet_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "lenet.onnx"
    onnx.save(MODELS["lenet"](), path)
    return str(path)


def test_ops_lists_ir_and_onnx_ops(capsys):
    assert main(["ops"]) == 0
    out = capsys.readouterr().out
    for name in ("conv2d_grad_weight", "sgd_update", "softmax_cross_entropy"):
        assert name in out
    assert "Conv" in out and "BatchNormalization" in out


def test_show_prints_the_ir(lenet_path, capsys):
    assert main(["show", lenet_path]) == 0
    out = capsys.readouterr().out
    assert out.startswith("graph ") and "conv2d(x," in out and "linear(" in out


def test_compile_writes_graph_and_report(lenet_path, tmp_path, capsys):
    out_dir = tmp_path / "out"
    assert main(["compile", lenet_path, "-o", str(out_dir), "--update", "bias",
                 "--lr", "0.05", "--momentum", "0.9"]) == 0
    graph = (out_dir / "training_graph.txt").read_text()
    report = json.loads((out_dir / "report.json").read_text())
    assert "channel_sum_sgd" in graph and "conv2d_grad_weight" not in graph
    assert report["optimizer"]["lr"] == 0.05 and report["optimizer"]["momentum"] == 0.9
    assert report["trainable"] and all("bias" in name for name in report["trainable"])
    by_name = {t["name"]: t for t in report["tensors"]}
    assert all(by_name[n]["role"] == "trainable" for n in report["trainable"])
    assert report["bytes"]["optimizer_state"] == report["bytes"]["trainable_parameters"]


def test_compile_with_named_parameters(lenet_path, tmp_path):
    params = [i.name for i in onnx.load(lenet_path).graph.initializer][:2]
    assert main(["compile", lenet_path, "-o", str(tmp_path), "--update", ",".join(params)]) == 0
    assert json.loads((tmp_path / "report.json").read_text())["trainable"] == params


def test_user_errors_exit_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    assert main(["show", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tte: error:") and len(err.splitlines()) == 1


@pytest.mark.parametrize("args", [["--help"], ["ops", "--help"], ["show", "--help"],
                                  ["compile", "--help"]])
def test_help_explains_each_command(args):
    res = subprocess.run([sys.executable, "-m", "tte.cli", *args], capture_output=True, text=True)
    assert res.returncode == 0 and "usage: tte" in res.stdout
    assert len(res.stdout.splitlines()) > 3
