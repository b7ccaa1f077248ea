"""Samplers: class-balanced clip sampling and token-budget batches (``torch.distributed`` aware).

Every draw is a pure function of ``(seed, epoch)``, so a run resumed mid-epoch sees exactly the
batches an uninterrupted run would have seen (see ``state_dict``/``load_state_dict``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from audioflex.packing import plan_batches

logger = logging.getLogger(__name__)


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (``numpy.random.SeedSequence``): same parts, same seed."""
    seq = np.random.SeedSequence([int(p) & 0xFFFFFFFFFFFFFFFF for p in parts])
    return int(seq.generate_state(2, np.uint64)[0]) >> 1


def _generator(*parts: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(derive_seed(*parts))
    return g


def class_balanced_weights(labels: Sequence[Sequence[str]]) -> torch.Tensor:
    """AudioSet-style clip weights ``[N]``: the sum over a clip's labels of 1 / (label frequency).

    Clips without labels get the smallest positive weight of the others (never 0, never dominant).
    """
    freq = Counter(name for clip in labels for name in set(clip))
    w = torch.tensor([sum(1.0 / freq[n] for n in set(clip)) for clip in labels], dtype=torch.float64)
    if len(w) and (w == 0).any():
        pos = w[w > 0]
        w[w == 0] = pos.min() if len(pos) else 1.0
    return w


class ClassBalancedSampler(Sampler[int]):
    """Draws ``num_samples`` clip indices per epoch with replacement, ``P(i) ∝ weights[i]``.

    Seeded and epoch-settable (:meth:`set_epoch`); with ``num_replicas > 1`` each rank takes a
    disjoint strided share of the epoch's draws (``num_samples // num_replicas`` each).
    """

    def __init__(
        self,
        weights: Sequence[float] | torch.Tensor,
        num_samples: int | None = None,
        *,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        w = torch.as_tensor(weights, dtype=torch.float64)
        if w.ndim != 1 or len(w) == 0:
            raise ValueError(f"ClassBalancedSampler: weights must be a non-empty [N] vector, got {tuple(w.shape)}")
        if (w < 0).any() or not torch.isfinite(w).all() or w.sum() <= 0:
            raise ValueError("ClassBalancedSampler: weights must be finite, >= 0 and not all 0")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"ClassBalancedSampler: rank {rank} not in [0, {num_replicas})")
        self.weights = w
        self.num_samples = int(num_samples if num_samples is not None else len(w))
        self.seed, self.epoch = int(seed), 0
        self.num_replicas, self.rank = num_replicas, rank

    @classmethod
    def from_labels(cls, labels: Sequence[Sequence[str]], **kwargs: Any) -> ClassBalancedSampler:
        """Sampler with :func:`class_balanced_weights` of the clips' label lists."""
        return cls(class_balanced_weights(labels), **kwargs)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def draw(self, epoch: int | None = None) -> list[int]:
        """All ``num_samples`` indices of an epoch (every rank's share, before splitting)."""
        g = _generator(self.seed, 0xBA1A, self.epoch if epoch is None else epoch)
        # multinomial is limited to 2**24 categories; sample via the inverse CDF instead
        cdf = torch.cumsum(self.weights, 0)
        u = torch.rand(self.num_samples, generator=g, dtype=torch.float64) * cdf[-1]
        return torch.searchsorted(cdf, u, right=True).clamp_max(len(cdf) - 1).tolist()

    def __iter__(self) -> Iterator[int]:
        idx = self.draw()
        n = len(self)
        return iter(idx[self.rank : n * self.num_replicas : self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples // self.num_replicas


class BudgetBatchSampler(Sampler[list[int]]):
    """Batches of at most ``max_tokens`` tokens (first-fit-decreasing), one epoch at a time.

    Per epoch: the clip pool (all clips, or an ``index_sampler``'s draws, e.g. class-balanced) is
    shuffled with ``(seed, epoch)``, planned into batches with :func:`~audioflex.packing.plan_batches`
    (token counts from ``token_counts(epoch)``, capped at ``max_tokens``: training crops longer
    clips), then batches are grouped into *steps* of ``num_replicas * accumulation`` batches of
    similar size (sorted by tokens, consecutive batches form a group), the step order is shuffled,
    and rank ``r`` takes batches ``r * accumulation ... (r + 1) * accumulation - 1`` of each step.
    So ranks get disjoint batches of similar total tokens and all ranks the same count (an
    incomplete last step is completed with batches from the start of the epoch when
    ``drop_last=False``, or dropped). The same layout with ``num_replicas=1, accumulation=k``
    gives one process exactly the union of ``k`` ranks' batches.

    Fixed-size batches: give every clip 1 token and ``max_tokens=batch_size``.

    Resume: ``load_state_dict({"epoch": e, "position": p})`` makes the next iteration start at
    this rank's batch ``p`` of epoch ``e`` (the training loop records how many it consumed).
    """

    def __init__(
        self,
        token_counts: Sequence[int] | Callable[[int], Sequence[int]],
        max_tokens: int,
        *,
        max_clips: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        accumulation: int = 1,
        drop_last: bool = False,
        index_sampler: ClassBalancedSampler | None = None,
    ) -> None:
        if max_tokens <= 0:
            raise ValueError(f"BudgetBatchSampler: max_tokens must be > 0, got {max_tokens}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"BudgetBatchSampler: rank {rank} not in [0, {num_replicas})")
        if accumulation < 1:
            raise ValueError(f"BudgetBatchSampler: accumulation must be >= 1, got {accumulation}")
        self._counts = token_counts
        self.max_tokens, self.max_clips = int(max_tokens), max_clips
        self.shuffle, self.seed = shuffle, int(seed)
        self.num_replicas, self.rank, self.accumulation = num_replicas, rank, accumulation
        self.drop_last = drop_last
        self.index_sampler = index_sampler
        self.epoch, self.position = 0, 0
        self._cache: tuple[int, list[list[list[int]]]] | None = None

    def counts(self, epoch: int) -> Sequence[int]:
        return self._counts(epoch) if callable(self._counts) else self._counts

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (and start at its first batch)."""
        if int(epoch) != self.epoch:
            self.position = 0
        self.epoch = int(epoch)

    def state_dict(self, position: int | None = None) -> dict[str, int]:
        """``{"epoch", "position"}``; pass the number of batches the consumer actually used."""
        return {"epoch": self.epoch, "position": self.position if position is None else int(position)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])

    def steps(self, epoch: int | None = None) -> list[list[list[int]]]:
        """The epoch's steps: each a list of ``num_replicas * accumulation`` batches (clip indices)."""
        epoch = self.epoch if epoch is None else epoch
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        counts = self.counts(epoch)
        if self.index_sampler is not None:
            pool = list(self.index_sampler.draw(epoch))
        else:
            pool = list(range(len(counts)))
        g = _generator(self.seed, 0xB0D6, epoch)
        if self.shuffle:
            pool = [pool[i] for i in torch.randperm(len(pool), generator=g).tolist()]
        sizes = [min(int(counts[i]), self.max_tokens) for i in pool]
        plan = plan_batches(sizes, self.max_tokens, max_clips=self.max_clips)
        batches = [[pool[j] for j in b] for b in plan]
        tokens = [sum(sizes[j] for j in b) for b in plan]
        per_step = self.num_replicas * self.accumulation
        if per_step > 1:
            order = sorted(range(len(batches)), key=lambda b: (-tokens[b], b))
            batches = [batches[b] for b in order]
        n_steps = len(batches) // per_step
        if len(batches) % per_step:
            if self.drop_last or not batches:
                batches = batches[: n_steps * per_step]
            else:
                missing = per_step - len(batches) % per_step
                batches = batches + [batches[i % len(batches)] for i in range(missing)]
                n_steps += 1
        steps = [batches[s * per_step : (s + 1) * per_step] for s in range(n_steps)]
        if self.shuffle:
            steps = [steps[i] for i in torch.randperm(len(steps), generator=g).tolist()]
        self._cache = (epoch, steps)
        return steps

    def rank_batches(self, epoch: int | None = None) -> list[list[int]]:
        """This rank's batches of the epoch, in order."""
        a, r = self.accumulation, self.rank
        return [b for step in self.steps(epoch) for b in step[r * a : (r + 1) * a]]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.rank_batches()
        start, self.position = self.position, 0
        yield from batches[start:]

    def __len__(self) -> int:
        return len(self.rank_batches())


__all__ = ["BudgetBatchSampler", "ClassBalancedSampler", "class_balanced_weights", "derive_seed"]
