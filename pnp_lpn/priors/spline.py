"""Learned one-dimensional profiles phi_i with curvature bounded below (ridge regularisers).

Each of ``n`` profiles is given by its derivative phi_i', a continuous piecewise-linear
function on the uniform grid t_k = -T + k h (k = 0..K-1, K odd, h = 2T / (K - 1)) with

    phi_i'(t_mid) = phi_i'(0) = 0,   slope a_ik = (phi_i'(t_{k+1}) - phi_i'(t_k)) / h >= -rho,

and constant beyond the grid (phi_i is linear there). So

- phi_i'' = a_ik on [t_k, t_{k+1}] and 0 outside [-T, T]: phi_i'' >= -rho everywhere
  (rho = 0: phi_i convex; rho = 1: phi_i + t^2 / 2 convex, "1-weakly convex");
- phi_i(0) = 0 = phi_i'(0), phi_i is the exact integral of phi_i' (piecewise quadratic).

The slope bound is applied inside :meth:`SplineProfiles.slopes` (a clamp of the free
parameters), so every parameter value gives a valid profile.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

#: (a, c, Phi) per interval, each (n, K + 1): :meth:`SplineProfiles.interval_tables`
Tables = tuple[Tensor, Tensor, Tensor]

#: elements per slice of an evaluation on the CPU (about 0.5 MB of float32 per temporary)
PIECE = 1 << 17


class SplineProfiles(nn.Module):
    """``n`` profiles phi_i on ``knots`` grid points over [-``span``, ``span``], phi_i'' >= -``rho``.

    :param n: number of profiles (one per filter channel).
    :param knots: K, odd, >= 3.
    :param span: T, half-width of the grid.
    :param rho: the curvature bound (>= 0).
    :param init_slope: the initial slope s inside [-1, 1]. Outside, phi' starts constant (a
        Huber-like start, rho = 0) or, for rho > 0, falls at the steepest allowed slope -rho
        back to 0 and stays there (a truncated-quadratic-like start: large responses, edges,
        cost a bounded amount). s is also the scale of the slopes' parameters (slope = s x
        parameter), so an optimiser's step moves every slope by the same fraction of the start.
    """

    def __init__(self, n: int, knots: int = 41, span: float = 4.0, rho: float = 0.0, init_slope: float = 1.0):
        super().__init__()
        if knots < 3 or knots % 2 == 0:
            raise ValueError(f"knots must be odd and >= 3, got {knots}")
        if rho < 0:
            raise ValueError(f"rho must be >= 0, got {rho}")
        self.n, self.knots, self.span, self.rho = n, knots, float(span), float(rho)
        self.h = 2 * self.span / (knots - 1)
        self.gain = float(init_slope)
        t = torch.linspace(-self.span, self.span, knots, dtype=torch.float64)
        target = init_slope * t.clamp(-1, 1)  # phi' at the knots; for rho > 0 falling back to 0 beyond |t| = 1
        if rho > 0:
            target = target.sign() * (init_slope - rho * (t.abs() - 1).clamp_min(0)).clamp_min(0).minimum(target.abs())
        start = (target.diff() / self.h / init_slope).float()
        self.raw_slopes = nn.Parameter(start.repeat(n, 1))

    def slopes(self) -> Tensor:
        """a (n, K - 1) = gain x parameters, clamped to >= -rho."""
        return (self.gain * self.raw_slopes).clamp_min(-self.rho)

    def tables(self) -> Tables:
        """(a, c, Phi): slopes (n, K-1), phi' at the knots (n, K), phi at the knots (n, K)."""
        a = self.slopes()
        mid = self.knots // 2
        steps = self.h * a
        c = torch.cat([a.new_zeros(self.n, 1), steps.cumsum(1)], 1)
        c = c - c[:, mid:mid + 1]
        areas = self.h * (c[:, :-1] + c[:, 1:]) / 2
        phi = torch.cat([a.new_zeros(self.n, 1), areas.cumsum(1)], 1)
        return a, c, phi - phi[:, mid:mid + 1]

    def interval_tables(self) -> Tables:
        """(a, c, Phi) of the K + 1 intervals j = 0..K of the real line, each (n, K + 1): interval j
        starts at its anchor t_{j-1} = -T + (j - 1) h and has phi'(u) = c_j + a_j (u - t_{j-1}). Inner
        intervals j = 1..K-1 are the grid's [t_{j-1}, t_j]; j = 0 is (-inf, -T) and j = K is [T, inf),
        with a = 0 (phi linear there) and c, Phi continued from the grid's ends."""
        a, c, phi = self.tables()
        zero = a.new_zeros(self.n, 1)
        first = phi[:, :1] - self.h * c[:, :1]  # phi at the anchor -T - h of interval 0
        return (torch.cat([zero, a, zero], 1), torch.cat([c[:, :1], c], 1), torch.cat([first, phi], 1))

    def evaluate(self, u: Tensor, order: tuple[int, ...] = (0, 1), first: int = 0,
                 tables: Tables | None = None) -> dict[int, Tensor]:
        """phi^(d)(u) for d in ``order`` (0: phi, 1: phi', 2: phi''), u of shape (B, n', ...)
        holding the inputs of profiles ``first`` .. ``first + n' - 1``.

        Formulas in :meth:`_formulas`: phi' is linear on each interval of the grid and constant
        beyond it, phi its exact integral, phi'' the interval's slope (0 beyond the grid).
        ``tables``: :meth:`interval_tables`, computed once by a caller that evaluates the same
        profiles many times (default: computed here).
        """
        pieces = list(self._pieces(u, order, first, tables))
        return {d: torch.cat([p[d] for p in pieces], -1).reshape(u.shape) for d in order}

    def derivative_and_sum(self, u: Tensor, first: int = 0, tables: Tables | None = None) -> tuple[Tensor, Tensor]:
        """(phi'(u) of u's shape, sum of phi(u) over all but the batch axis as (B,) float64),
        as :meth:`evaluate` but without storing phi(u)."""
        total, derivative = 0.0, []
        for piece in self._pieces(u, (0, 1), first, tables):
            total = total + piece[0].sum((1, 2), dtype=torch.float64)
            derivative.append(piece[1])
        return torch.cat(derivative, -1).reshape(u.shape), total

    def _pieces(self, u: Tensor, order: tuple[int, ...], first: int,
                tables: Tables | None = None) -> Iterator[dict[int, Tensor]]:
        """The formulas of :meth:`evaluate` on u viewed as (B, n', N): on the CPU in consecutive
        slices of about ``PIECE`` elements, whose temporaries stay in cache and are reused by the
        allocator (whole responses of a 512^2 image run several times slower, mostly in page
        faults of fresh large buffers); on a GPU in one piece (its caching allocator has no such
        cost, and each slice would cost kernel launches)."""
        n = u.shape[1]
        if first + n > self.n:
            raise ValueError(f"profiles {first}..{first + n - 1} requested, only {self.n} exist")
        a, c, phi = (t[first:first + n].to(u.dtype) for t in (self.interval_tables() if tables is None else tables))
        flat = u.reshape(u.shape[0], n, -1)
        width = max(1, PIECE // (flat.shape[0] * n)) if u.device.type == "cpu" else flat.shape[-1]
        for start in range(0, flat.shape[-1], width):
            yield self._formulas(flat[..., start:start + width], (a, c, phi), order)

    def _formulas(self, u: Tensor, tables: Tables, order: tuple[int, ...]) -> dict[int, Tensor]:
        """phi^(d)(u) for u of shape (B, n', N) from the interval tables (a, c, Phi) of its n'
        profiles: with j = clamp(floor((u + T + h) / h), 0, K), the interval holding u, and
        s = u - t_{j-1}, phi'(u) = c_j + a_j s, phi(u) = Phi_j + s (c_j + phi'(u)) / 2 (the exact
        integral: phi' is linear on the interval), phi''(u) = a_j."""
        t = u + (self.span + self.h)
        j = (t * (1 / self.h)).clamp_(0, self.knots).floor_()
        s = t.sub_(j, alpha=self.h)
        index = j.int()
        if u.shape[1] > 1:  # rows of the flattened (n' (K + 1),) tables
            index += torch.arange(0, u.shape[1] * (self.knots + 1), self.knots + 1, dtype=index.dtype,
                                  device=index.device).view(1, -1, 1)

        def pick(table: Tensor) -> Tensor:
            return table.reshape(-1).index_select(0, index.reshape(-1)).view(index.shape)

        ak = pick(tables[0])
        out = {2: ak} if 2 in order else {}
        if 0 in order or 1 in order:
            ck = pick(tables[1])
            d1 = torch.addcmul(ck, ak, s)
            if 0 in order:
                out[0] = pick(tables[2]).addcmul_(s, ck.add_(d1), value=0.5)
            if 1 in order:
                out[1] = d1
        return out
