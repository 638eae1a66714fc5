"""tte search: size parsing, the solver against brute force, the analysis cache and
determinism, and one tiny search of a real backbone through the CLI."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from tte.cli import main
from tte.errors import TTEError
from tte.search import analysis, format_result, parse_size, search
from tte.search.solver import Cost, Problem, Scheme, choose
from tte.sparse import parse_scheme

MODEL = Path(__file__).resolve().parents[2] / "shared/models/mcu_imagenet/mcunet-5fps.pkl"
RATIOS = (0.125, 0.25, 0.5, 1.0)


def test_parse_size():
    assert parse_size("256K") == parse_size("256KB") == parse_size("256kib") == 262144
    assert parse_size("1M") == 1 << 20 and parse_size("1.5M") == 3 << 19
    assert parse_size("262144") == parse_size(262144) == 262144
    for bad in ("12Q", "", "K", "-1", "0", "0.5", "1.5.2M", True, 0):
        with pytest.raises(TTEError, match="bad memory size"):
            parse_size(bad)


def _synthetic(seed: int, n_layers: int = 4, interaction: int = 0):
    """A random problem and a cost function with the solver's structure (largest arena plus
    summed trainable bytes and flash changes), plus `interaction` bytes per pair of chosen
    weights that the single-component model cannot see."""
    rng = np.random.default_rng(seed)
    grid = [1, 2, 4]
    bias = {k: float(v) for k, v in zip(grid, np.sort(rng.uniform(-0.01, 0.05, 3)))}
    weights = {i: {r: float(rng.uniform(-0.02, 0.06)) for r in RATIOS} for i in range(n_layers)}
    b_arena = {0: 1000, 1: 1000, 2: 1100, 4: 1500}
    b_train = {0: 100, 1: 120, 2: 160, 4: 300}
    w_arena = {i: int(rng.integers(900, 1800)) for i in range(n_layers)}
    w_bytes = {i: int(rng.integers(50, 800)) for i in range(n_layers)}

    def costs(s: Scheme) -> Cost:
        arena = max([b_arena[s.n_bias]] + [w_arena[i] for i, _ in s.weights])
        moved = sum(int(r * w_bytes[i]) for i, r in s.weights)
        pairs = len(s.weights) * (len(s.weights) - 1) // 2
        # flash: the trained channels leave it, each trained weight adds 150 B of constants
        return Cost(arena + interaction * pairs, b_train[s.n_bias] + moved,
                    5000 - moved + 150 * len(s.weights))
    return Problem(bias, weights), costs


def _all_schemes(problem: Problem):
    layers = sorted(problem.weights)
    for k in problem.bias:
        for pick in itertools.product([0.0, *RATIOS], repeat=len(layers)):
            yield Scheme(k, tuple((i, r) for i, r in zip(layers, pick) if r))


@pytest.mark.parametrize("seed", range(6))
def test_solver_finds_the_brute_force_optimum(seed):
    problem, costs = _synthetic(seed)
    for sram, flash in [(1400, 10_000), (1900, 10_000), (2600, 10_000), (2600, 5000),
                        (10_000, 5100), (10_000, 10_000)]:
        fits = [s for s in _all_schemes(problem)
                if costs(s).sram <= sram and costs(s).flash <= flash]
        s, cost, _, proven = choose(problem, costs, sram, flash)
        assert proven
        assert cost == costs(s) and cost.sram <= sram and cost.flash <= flash
        best = max(problem.contribution(f) for f in fits)
        assert problem.contribution(s) == pytest.approx(best, abs=1e-12), (sram, flash)


@pytest.mark.parametrize("seed", range(4))
def test_solver_retries_when_the_real_cost_is_higher(seed):
    problem, costs = _synthetic(seed, n_layers=5, interaction=60)
    s, cost, rounds, proven = choose(problem, costs, 2600, 10_000)
    assert proven and rounds > 1 and cost.sram <= 2600
    # the model never overestimates here, so the result is the optimum under the real cost
    fits = [f for f in _all_schemes(problem) if costs(f).sram <= 2600]
    assert problem.contribution(s) == max(problem.contribution(f) for f in fits)
    assert choose(problem, costs, 2600, 10_000) == (s, cost, rounds, proven)  # deterministic


def test_no_scheme_fits_names_the_excess():
    problem, costs = _synthetic(0)
    smallest = costs(Scheme(1)).sram  # the head and the last bias: 1000 + 120
    with pytest.raises(TTEError, match=f"exceeds SRAM by {smallest - 1000:,} B"):
        choose(problem, costs, 1000, 10_000)
    with pytest.raises(TTEError, match=r"exceeds flash by 1 B \(5,000 B > 4,999 B\)"):
        choose(problem, costs, 10_000, 4999)


# --- a real backbone, tiny: 32x32 digits, 40 images, 20 steps, 7 fine-tunes ---------------

TINY = ["--data", "digits", "--limit", "40", "--analysis-size", "32", "--input-size", "64",
        "--steps", "20", "--layers", "1", "--bias-grid", "1,2", "--no-progress"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("mlxtend")
    if not MODEL.exists():
        pytest.skip(f"{MODEL} is not there")
    cache = tmp_path_factory.mktemp("search-cache")
    out = cache / "scheme.json"
    assert main(["search", str(MODEL), "--sram", "256K", "--flash", "1M", *TINY,
                 "--cache-dir", str(cache), "-o", str(out)]) == 0
    return cache, out


def test_search_through_the_cli(tiny, capsys):
    cache, out = tiny
    scheme = json.loads(out.read_text())
    assert parse_scheme(scheme).n_bias_update in (1, 2)
    assert set(scheme["weight_update_idx"]) <= {41}
    [runs] = [json.loads(p.read_text())["runs"] for p in cache.glob("analysis-*.json")]
    assert len(runs) == 7  # head alone, 2 bias k, 4 ratios of layer 41 (k=1 is its base)


def test_second_search_reuses_the_analysis(tiny, monkeypatch, capsys):
    cache, _ = tiny

    def no_finetunes(*args):
        raise AssertionError("the analysis should come from the cache")
    monkeypatch.setattr(analysis, "_run_all", no_finetunes)
    r = search(MODEL, sram="1M", flash="1M", data="digits", limit=40, analysis_size=32,
               input_size=64, steps=20, layers=1, bias_grid=[1, 2], cache_dir=cache,
               progress=False)
    assert r["analysis"]["fine_tunes_run"] == 0 and r["memory"]["sram_bytes"] <= 1 << 20
    patched = search(MODEL, sram="1M", flash="1M", data="digits", limit=40, analysis_size=32,
                     input_size=64, steps=20, layers=1, bias_grid=[1, 2], cache_dir=cache,
                     progress=False, patch="auto")
    assert patched["analysis"]["fine_tunes_run"] == 0  # patching changes memory, not accuracy
    assert patched["memory"]["sram_bytes"] < r["memory"]["sram_bytes"]
    with pytest.raises(TTEError, match=r"exceeds SRAM by [\d,]+ B"):
        search(MODEL, sram="10K", flash="1M", data="digits", limit=40, analysis_size=32,
               input_size=64, steps=20, layers=1, bias_grid=[1, 2], cache_dir=cache,
               progress=False)


def test_analysis_is_deterministic(tiny, tmp_path):
    """One process or two, fresh cache: the same fine-tunes give the same numbers."""
    cache, _ = tiny
    [first] = [json.loads(p.read_text())["runs"] for p in cache.glob("analysis-*.json")]
    search(MODEL, sram="1M", flash="1M", data="digits", limit=40, analysis_size=32,
           input_size=64, steps=20, layers=1, bias_grid=[1], ratios=[1.0], cache_dir=tmp_path,
           jobs=1, progress=False)
    [again] = [json.loads(p.read_text())["runs"] for p in tmp_path.glob("analysis-*.json")]
    assert again.keys() == {"bias 0", "bias 1", "bias 1, w41@1"}
    for name, run in again.items():
        assert {k: v for k, v in run.items() if k != "seconds"} == \
            {k: v for k, v in first[name].items() if k != "seconds"}


def test_cli_errors(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["search", str(MODEL), "--sram", "256Q", "--flash", "1M", "--data", "digits"])
    assert "bad memory size '256Q'" in capsys.readouterr().err
    assert main(["search", str(tmp_path / "none.pkl"), "--sram", "1M", "--flash", "1M",
                 "--data", "digits"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_npz_data(tmp_path):
    from tte.datasets import load_dataset
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, 9, 7, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(20) % 2)
    d = load_dataset(str(tmp_path / "d.npz"), size=(9, 7))
    assert d.x_train.shape == (14, 3, 9, 7) and d.classes == ["0", "1"]
    scaled = (x.transpose(0, 3, 1, 2) / 127.5 - 1).astype(np.float32)  # same size: no resize
    i = int(np.argmin(np.abs(scaled - d.x_train[0]).max(axis=(1, 2, 3))))
    np.testing.assert_allclose(d.x_train[0], scaled[i], atol=1e-6)
    assert d.y_train[0] == i % 2
    np.savez(tmp_path / "bad.npz", x=x)
    with pytest.raises(TTEError, match="needs arrays 'x' and 'y'"):
        load_dataset(str(tmp_path / "bad.npz"))


def test_verify_fine_tunes_the_chosen_scheme(tiny, capsys):
    cache, _ = tiny
    r = search(MODEL, sram="1M", flash="1M", data="digits", limit=40, analysis_size=32,
               input_size=64, steps=20, layers=1, bias_grid=[1, 2], cache_dir=cache,
               progress=False, verify=True)
    assert 0 <= r["measured"]["accuracy"] <= 1
    assert "measured: a fine-tune of this scheme" in format_result(r)


def test_weight_options_below_min_gain_are_not_candidates(tiny):
    cache, _ = tiny
    r = search(MODEL, sram="1M", flash="1M", data="digits", limit=40, analysis_size=32,
               input_size=64, steps=20, layers=1, bias_grid=[1, 2], cache_dir=cache,
               progress=False, min_gain=1.0)
    assert r["scheme"]["weight_update_idx"] == []
