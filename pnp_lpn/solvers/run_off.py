"""The run-off guard: iterates that leave the range where a learned R is known.

A learned R can fall without bound outside its training range, so the objective falls too
and no objective test sees the iterate run off. :class:`RangeGuard` says where the range
ends, :class:`HeldImages` keeps images that left it at their last iterate inside, and
:class:`RunOff` applies both to each iterate of a solve.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._checks import warn_at_caller

RANGE_FACTOR = 10.0  # without a known data range: iterates beyond this x the start's scale get a warning
SCALE_FRACTION = 0.5  # a start with more of its values outside the prior's trusted range: wrong scale


class RangeGuard:
    """The range an iterate should stay in.

    With the prior's ``data_range`` (lo, hi) known, an image whose iterate has a value outside
    the trusted range [lo - w/2, hi + w/2], w = hi - lo, is held: it keeps its previous iterate
    while the rest of the batch goes on. Without it the limit is a guess,
    +-RANGE_FACTOR x max(1, max |x0|, max |x_1|), and leaving it only warns (once: the guard
    is then :meth:`open`): a legitimate minimiser can lie there too.
    """

    def __init__(self, data_range: tuple[float, float] | None, x0: Tensor):
        self.data_range = data_range
        if data_range is not None:
            lo, hi = data_range
            self.lo, self.hi = lo - (hi - lo) / 2, hi + (hi - lo) / 2
        else:
            self.hi = RANGE_FACTOR * max(1.0, float(x0.abs().max()))
            self.lo = -self.hi

    @property
    def stops(self) -> bool:
        """Whether leaving the range holds the image (the prior's range is known)."""
        return self.data_range is not None

    def outside(self, k: int, z: Tensor) -> Tensor:
        """(B,) bool on the CPU: images of iterate k with a value outside the range (the first
        iterate only widens a guessed range)."""
        if not self.stops and k == 1:
            self.hi = max(self.hi, RANGE_FACTOR * float(z.abs().max()))
            self.lo = -self.hi
        flat = z.flatten(1)
        return ((flat < self.lo) | (flat > self.hi)).any(1).cpu()

    def open(self) -> None:
        """Watch no more (a guessed range warns once)."""
        self.lo, self.hi = -math.inf, math.inf

    def check_scale(self, x0: Tensor, notes: list[str]) -> None:
        """Warn (and note) when most of the start lies outside the trusted range of a prior with
        a ``data_range``: the data are then on another scale than the prior's training images
        (0..255, Hounsfield units, ...), and every iterate would be held at once."""
        if not self.stops:
            return
        outside = float(((x0 < self.lo) | (x0 > self.hi)).float().mean())
        if outside > SCALE_FRACTION:
            lo, hi = self.data_range
            msg = (f"solve: {outside:.0%} of the start x0 lies outside [{self.lo:.3g}, {self.hi:.3g}] (the prior's "
                   f"training range [{lo:.3g}, {hi:.3g}] widened by half its width; x0 spans "
                   f"[{float(x0.min()):.3g}, {float(x0.max()):.3g}]): y is probably on another scale than the "
                   f"prior's images; rescale it to [{lo:.3g}, {hi:.3g}] (e.g. y / 255 for 8-bit data)")
            warn_at_caller(msg)
            notes.append(msg)

    def message(self, k: int, images: list[int], batch: int) -> str:
        """What to say when ``images`` (indices into a batch of ``batch``) left at iteration k."""
        who = "the iterate" if batch == 1 else f"the iterate of image(s) {images} (of {batch})"
        where = f"{who} left [{self.lo:.3g}, {self.hi:.3g}] at iteration {k}"
        trained = "lo, hi" if not self.stops else "{:.3g}, {:.3g}".format(*self.data_range)
        advice = (f"box=({trained}) keeps iterates in range, and a smaller step (e.g. step=1/(2 lam): a larger ADMM "
                  "penalty, the prior step then the exact prox of R/2) damps the run-off")
        if self.stops:
            return (f"ran off: {where}, the prior's training range [{trained}] widened by half its width, where R "
                    f"is not learned and can fall without bound; returning iterate {k - 1} for it. {advice}")
        return (f"solve: {where} ({RANGE_FACTOR:g} x the largest value of the start and the first iterate): a "
                "learned R can decrease without bound outside its training range, so a falling objective does "
                "not mean a good result; " + advice)


class HeldImages:
    """Images of a batch held at their last in-range iterate.

    The solver state is batched, so a held image is still stepped with the others; after each
    step its batch state (the iteration's ``batch_state`` tensors) is put back, so it repeats
    the same discarded step and cannot blow up or leave values that other code would see. A
    step replaces its state tensors instead of writing into them, so the snapshot is
    references, not copies; the put-back writes into the new tensors in place.
    """

    def __init__(self, iteration, z0: Tensor):
        self.iteration, self.mask, self.x = iteration, torch.zeros(z0.shape[0], dtype=torch.bool), z0.clone()

    def snapshot(self) -> dict[str, Tensor]:
        """The iteration's batch state, by name."""
        return {name: getattr(self.iteration, name) for name in self.iteration.batch_state}

    def hold(self, new: Tensor, z_prev: Tensor) -> None:
        """Hold the images ``new`` (B,) bool at ``z_prev``."""
        self.x[new.to(z_prev.device)] = z_prev[new.to(z_prev.device)]
        self.mask |= new

    def restore(self, saved: dict[str, Tensor]) -> None:
        """Put the held images' state back to ``saved`` (taken before the step)."""
        for name, before in saved.items():
            now = getattr(self.iteration, name)
            now[self.mask.to(now.device)] = before[self.mask.to(now.device)]


class RunOff:
    """The guard applied to a solve: :meth:`before_step` saves the batch state,
    :meth:`check` holds (or warns about) the images of the new iterate that left the range
    and puts the held ones back; ``messages`` collects what held images."""

    def __init__(self, guard: RangeGuard, iteration, notes: list[str]):
        self.guard, self.notes, self.messages = guard, notes, []
        self.held, self.saved = HeldImages(iteration, iteration.z), {}

    def before_step(self) -> None:
        self.saved = self.held.snapshot() if self.guard.stops else {}

    def check(self, k: int, z: Tensor, z_prev: Tensor) -> bool:
        """Apply the guard to iterate k = ``z`` (previous ``z_prev``); True when every image is held."""
        off = self.guard.outside(k, z) & ~self.held.mask
        if off.any():
            msg = self.guard.message(k, off.nonzero().flatten().tolist(), off.numel())
            if self.guard.stops:
                self.held.hold(off, z_prev)
                self.messages.append(msg)
                msg = f"solve: {msg}"
            else:
                self.guard.open()
                self.notes.append(msg)
            warn_at_caller(msg)
        if self.held.mask.all():
            return True
        if self.held.mask.any():
            self.held.restore(self.saved)  # in place: z shows the held images' last in-range iterate
        return False
