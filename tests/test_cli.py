"""The `tte` command line: ops, show, compile, report, help and error exits."""
import json
import re
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
    mem = report["memory"]
    assert mem["sram"]["optimizer_state"] == mem["sram"]["trainable_parameters"] > 0
    assert "bytes" not in report  # the unplanned activation total is gone
    out = capsys.readouterr().out
    assert f"arena {mem['arena_bytes']:,} B" in out and f"SRAM {mem['sram_bytes']:,} B" in out
    assert f"flash {mem['flash_bytes']:,} B" in out


@pytest.fixture(scope="module")
def compiled_dir(lenet_path, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("lenet_out")
    assert main(["compile", lenet_path, "-o", str(out_dir), "--momentum", "0.9"]) == 0
    return out_dir


def test_compile_writes_the_c_project_and_its_memory(compiled_dir):
    report = json.loads((compiled_dir / "report.json").read_text())
    name = report["c"]["name"]
    header = (compiled_dir / f"{name}.h").read_text()
    assert report["c"] == {"name": name, "header": f"{name}.h", "source": f"{name}.c"}
    assert f"tte_{name}_train_step" in (compiled_dir / f"{name}.c").read_text()
    macro = re.search(rf"#define TTE_{name.upper()}_ARENA_BYTES (\d+)", header)
    mem = report["memory"]
    assert macro and int(macro.group(1)) == mem["arena_bytes"]
    assert mem["arena_bytes"] == max(mem["training_arena_bytes"], mem["inference_arena_bytes"])
    assert mem["training_arena_bytes"] >= mem["training_lower_bound_bytes"] > 0
    assert mem["sram"]["arena"] == mem["arena_bytes"]
    assert mem["sram_bytes"] == sum(mem["sram"].values())
    params = {t["name"]: t for t in report["tensors"]}
    assert mem["sram"]["trainable_parameters"] == sum(
        params[n]["bytes"] for n in report["trainable"])
    assert mem["flash_bytes"] == sum(t["bytes"] for t in report["tensors"]
                                     if t["role"] in ("frozen", "const"))
    nodes = len(report["schedule"])
    assert nodes == sum(report["nodes"].values())
    for t in mem["arena_tensors"]:
        assert 0 <= t["offset"] and t["offset"] + t["bytes"] <= mem["training_arena_bytes"]
        assert 0 <= t["first_node"] <= t["last_node"] <= nodes


def test_program_report_computes_the_same_memory_without_c(lenet_path, tmp_path):
    import tte
    prog = tte.compile(lenet_path, optimizer={"name": "sgd", "momentum": 0.9})
    project = prog.generate_c(str(tmp_path))
    assert prog.report()["memory"] == project.memory
    assert "c" not in prog.report()


def test_report_prints_the_memory_table(compiled_dir, capsys):
    assert main(["report", str(compiled_dir)]) == 0
    out = capsys.readouterr().out
    mem = json.loads((compiled_dir / "report.json").read_text())["memory"]
    for label, value in [("flash", mem["flash_bytes"]), ("SRAM total", mem["sram_bytes"]),
                         ("optimizer state", mem["sram"]["optimizer_state"]),
                         ("lower bound", mem["training_lower_bound_bytes"]),
                         ("inference", mem["inference_arena_bytes"])]:
        assert re.search(rf"{label}.* {value:,} B", out), label
    rows = [line.split() for line in out.splitlines()
            if re.match(r"\s+[\d,]+\s+[\d,]+\s+[\d,]+\s+\d+\.\.\d+ ", line)]
    assert len(rows) == len(mem["arena_tensors"])
    offsets = [int(r[0].replace(",", "")) for r in rows]
    assert offsets == sorted(offsets)  # default order: by offset
    by_name = {t["name"]: t for t in mem["arena_tensors"]}
    for r in rows:
        t = by_name[r[5]]
        assert (int(r[1].replace(",", "")), r[3]) == (t["bytes"],
                                                      f"{t['first_node']}..{t['last_node']}")
    assert main(["report", str(compiled_dir), "--sort", "size"]) == 0
    sizes = [int(line.split()[1].replace(",", "")) for line in capsys.readouterr().out.splitlines()
             if re.match(r"\s+[\d,]+\s+[\d,]+\s+[\d,]+\s+\d+\.\.\d+ ", line)]
    assert sizes == sorted(sizes, reverse=True) and len(sizes) == len(rows)


def test_report_plot_writes_a_png(compiled_dir, tmp_path, capsys):
    png = tmp_path / "arena.png"
    assert main(["report", str(compiled_dir), "--plot", str(png)]) == 0
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    assert f"wrote {png}" in capsys.readouterr().out


@pytest.mark.parametrize("content,message", [
    (None, "does not exist"),
    ("{not json", "cannot read"),
    ('{"model": "m", "nodes": {}}', "no memory section"),
    ('{"model": "m", "memory": {"arena_bytes": "big"}}', "memory.arena_bytes"),
    ("[1, 2]", "not a JSON object"),
])
def test_report_errors_for_a_missing_or_malformed_report(tmp_path, capsys, content, message):
    if content is not None:
        (tmp_path / "report.json").write_text(content)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tte: error:") and len(err.splitlines()) == 1 and message in err


def test_report_error_for_a_missing_directory(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_compile_without_c_still_writes_graph_and_report(lenet_path, tmp_path, capsys,
                                                         monkeypatch):
    from tte.errors import UnsupportedError
    from tte.program import Program

    def no_c(self, out_dir, name=None):
        raise UnsupportedError("the C backend emits f32 graphs; v is f16")
    monkeypatch.setattr(Program, "generate_c", no_c)
    assert main(["compile", lenet_path, "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tte: error: the C backend emits f32") and "but no C" in err
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["memory"]["arena_bytes"] > 0 and "c" not in report
    assert (tmp_path / "training_graph.txt").exists() and not list(tmp_path.glob("*.c"))


def test_compile_into_a_file_is_an_error(lenet_path, tmp_path, capsys):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    assert main(["compile", lenet_path, "-o", str(not_a_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tte: error: cannot write into") and len(err.splitlines()) == 1


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
                                  ["compile", "--help"], ["report", "--help"]])
def test_help_explains_each_command(args):
    res = subprocess.run([sys.executable, "-m", "tte.cli", *args], capture_output=True, text=True)
    assert res.returncode == 0 and "usage: tte" in res.stdout
    assert len(res.stdout.splitlines()) > 3
