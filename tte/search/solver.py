"""Choose a sparse-update scheme: the largest summed contribution within an SRAM and a flash
budget.

A scheme is (k, weights): the biases of the last k convolutions and, per chosen layer, one
ratio of its weight channels (the new head always trains). Its contribution is additive, as
in the paper: bias[k] + sum of weight[layer][ratio].

Costs come from compiling (`costs(scheme) -> Cost`). The exact branch and bound works on a
cost model built from single-component compiles: SRAM = the largest arena (+ inputs) of any
component + the sum of their trainable bytes, flash = the bias scheme's flash + the sum of
each weight's flash change. Its choice is then compiled; when the real cost breaks the
budget, that scheme is excluded, the excess becomes a safety margin (dropped again when it
leaves nothing), and the solver runs again, until no better scheme is left.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from tte.errors import TTEError

Weights = tuple[tuple[int, float], ...]  # ((layer, ratio), ...) sorted by layer
EPS = 1e-9  # contributions closer than this are equal (sums in another order differ by ulps)


@dataclass(frozen=True, order=True)
class Scheme:
    n_bias: int
    weights: Weights = ()

    def as_dict(self) -> dict:
        """In tte/sparse.py's format."""
        return {"n_bias_update": self.n_bias,
                "weight_update_idx": [i for i, _ in self.weights],
                "weight_update_ratio": [r for _, r in self.weights]}


@dataclass(frozen=True)
class Cost:
    arena: int       # arena + inputs: the part that does not add up over components
    trainable: int   # trainable parameters + optimizer state: the part that does
    flash: int
    detail: dict = field(default_factory=dict, compare=False)  # the report's memory section

    @property
    def sram(self) -> int:
        return self.arena + self.trainable


@dataclass(frozen=True)
class Problem:
    bias: Mapping[int, float]                      # k -> contribution (k >= 1)
    weights: Mapping[int, Mapping[float, float]]   # layer -> ratio -> contribution

    def contribution(self, s: Scheme) -> float:
        return self.bias[s.n_bias] + sum(self.weights[i][r] for i, r in s.weights)


@dataclass(frozen=True)
class _Option:  # one weight choice of a layer, with its cost-model terms
    ratio: float
    gain: float
    arena: int
    trainable: int  # added to the bias scheme's
    flash: int      # added to the bias scheme's (negative: the weight leaves flash)


class _Model:
    """The additive cost model from single-component compiles."""

    def __init__(self, problem: Problem, costs: Callable[[Scheme], Cost]) -> None:
        self.bias = {k: costs(Scheme(k)) for k in sorted(problem.bias)}
        head = costs(Scheme(0))
        self.layers = {}
        for layer in sorted(problem.weights):
            opts = []
            for ratio, gain in sorted(problem.weights[layer].items()):
                c = costs(Scheme(0, ((layer, ratio),)))
                opts.append(_Option(ratio, gain, c.arena, c.trainable - head.trainable,
                                    c.flash - head.flash))
            self.layers[layer] = opts

    def estimate(self, s: Scheme) -> tuple[int, int]:
        b = self.bias[s.n_bias]
        opts = [next(o for o in self.layers[i] if o.ratio == r) for i, r in s.weights]
        arena = max([b.arena] + [o.arena for o in opts])
        return (arena + b.trainable + sum(o.trainable for o in opts),
                b.flash + sum(o.flash for o in opts))


def _prune(opts: list[_Option], flash_binds: bool) -> list[_Option]:
    """Drop options that another option of the same layer (or leaving it out) beats."""
    keep = [o for o in opts if o.gain > 0 or (flash_binds and o.flash < 0)]
    return [o for o in keep if not any(
        p is not o and p.gain >= o.gain and p.arena <= o.arena and p.trainable <= o.trainable
        and p.flash <= o.flash and (p.gain, -p.trainable, -p.ratio) > (o.gain, -o.trainable,
                                                                       -o.ratio)
        for p in keep)]


def solve(problem: Problem, model: _Model, sram: int, flash: int,
          exclude: frozenset[Scheme] = frozenset(), floor: float = float("-inf")
          ) -> Scheme | None:
    """The scheme of the largest contribution above floor whose modelled cost fits (exact
    branch and bound); ties go to the first found in a fixed order. None if none."""
    most_flash = max(b.flash for b in model.bias.values()) + sum(
        max([0] + [o.flash for o in opts]) for opts in model.layers.values())
    flash_binds = most_flash > flash
    layers = [(i, sorted(_prune(opts, flash_binds), key=lambda o: (-o.gain, o.ratio)))
              for i, opts in model.layers.items()]
    layers = [(i, opts) for i, opts in layers if opts]
    layers.sort(key=lambda lo: (-lo[1][0].gain, lo[0]))
    # bounds on what the layers from d on can still add
    best_gain, least_flash = [0.0] * (len(layers) + 1), [0] * (len(layers) + 1)
    for d in range(len(layers) - 1, -1, -1):
        opts = layers[d][1]
        best_gain[d] = best_gain[d + 1] + max(0.0, max(o.gain for o in opts))
        least_flash[d] = least_flash[d + 1] + min(0, min(o.flash for o in opts))
    best: list = [None, floor]  # scheme, gain
    chosen: list[tuple[int, _Option]] = []

    def visit(d: int, gain: float, arena: int, trainable: int, fl: int) -> None:
        if gain + best_gain[d] <= best[1] + EPS or arena + trainable > sram or \
                fl + least_flash[d] > flash:
            return
        if d == len(layers):
            s = Scheme(n_bias, tuple(sorted((i, o.ratio) for i, o in chosen)))
            if s not in exclude:
                best[:] = [s, gain]
            return
        layer, opts = layers[d]
        for o in opts + [None]:  # sorted by gain; leaving the layer out last
            if o is None:
                visit(d + 1, gain, arena, trainable, fl)
            else:
                chosen.append((layer, o))
                visit(d + 1, gain + o.gain, max(arena, o.arena), trainable + o.trainable,
                      fl + o.flash)
                chosen.pop()

    for n_bias, b in sorted(model.bias.items(), key=lambda kb: (-problem.bias[kb[0]], kb[0])):
        visit(0, problem.bias[n_bias], b.arena, b.trainable, b.flash)
    return best[0]


def check_fits(smallest: Scheme, costs: Callable[[Scheme], Cost], sram: int, flash: int
               ) -> Cost:
    """The cost of the smallest scheme; TTEError saying by how much it breaks the budget."""
    c = costs(smallest)
    if c.sram > sram or c.flash > flash:
        over = [f"SRAM by {c.sram - sram:,} B ({c.sram:,} B > {sram:,} B)"] * (c.sram > sram)
        over += [f"flash by {c.flash - flash:,} B ({c.flash:,} B > {flash:,} B)"] * (
            c.flash > flash)
        raise TTEError(f"no sparse-update scheme fits: the smallest (the head and the biases "
                       f"of the last {smallest.n_bias} convolution(s)) exceeds "
                       f"{' and '.join(over)}")
    return c


def choose(problem: Problem, costs: Callable[[Scheme], Cost], sram: int, flash: int,
           max_rounds: int = 200) -> tuple[Scheme, Cost, int, bool]:
    """(scheme, its compiled cost, solver rounds, whether it is proven optimal). Optimal
    means: no scheme of a larger contribution has a modelled cost within the budget and a
    real one too. Raises TTEError when not even the smallest scheme (the head and the
    fewest biases) fits."""
    best = Scheme(min(problem.bias))
    best_cost = check_fits(best, costs, sram, flash)
    model = _Model(problem, costs)
    margin_sram = margin_flash = 0  # a guess of the model's error, to exclude fewer by hand
    exclude: set[Scheme] = set()
    for rounds in range(1, max_rounds + 1):
        s = solve(problem, model, sram - margin_sram, flash - margin_flash, frozenset(exclude),
                  floor=problem.contribution(best))
        if s is None and margin_sram == margin_flash == 0:
            return best, best_cost, rounds, True
        if s is not None:
            real = costs(s)
            if real.sram <= sram and real.flash <= flash:
                best, best_cost = s, real
                continue  # is there a better one that the margin hid?
            exclude.add(s)
            margin_sram = max(margin_sram, real.sram - sram)
            margin_flash = max(margin_flash, real.flash - flash)
        else:  # the margin was too cautious; the exclusions keep the progress
            margin_sram = margin_flash = 0
    return best, best_cost, max_rounds, False
