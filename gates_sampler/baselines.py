"""Baseline ask/tell searchers for honest comparison: random search and regularized evolution."""

from __future__ import annotations

from collections import deque
from typing import Any

from gates_sampler.base_searcher import AskTellSearcher
from gates_sampler.spaces.base import Arch, SearchSpace


class RandomSearcher(AskTellSearcher):
    """Uniform random search without repeats (by canonical key)."""

    def _propose(self, n: int) -> list[Arch]:
        return self._random_unseen(n)


class REASearcher(AskTellSearcher):
    """Regularized evolution (Real et al., 2019) as ask/tell.

    The first ``population_size`` proposals are random; afterwards each proposal mutates the best of
    ``sample_size`` random members of the population (the most recent ``population_size`` results),
    retrying until the child is unseen.
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        direction: str = "maximize",
        population_size: int = 10,
        sample_size: int = 3,
        seed: int | None = None,
    ) -> None:
        super().__init__(space, direction=direction, seed=seed)
        if population_size < 2 or not 1 <= sample_size <= population_size:
            raise ValueError(
                "need population_size >= 2 and 1 <= sample_size <= population_size, "
                f"got {population_size}, {sample_size}"
            )
        self.population_size = population_size
        self.sample_size = sample_size
        self._population: deque[tuple[Arch, float]] = deque(maxlen=population_size)

    def _on_tell(self, arch: Arch, value: float | None) -> None:
        if value is not None:
            self._population.append((arch, self._internal(value)))

    def _propose(self, n: int) -> list[Arch]:
        if len(self._population) < self.population_size:
            return self._random_unseen(n)
        out: list[Arch] = []
        keys = self.seen_keys()
        pop = list(self._population)
        for _ in range(n):
            for _ in range(1000):
                idx = self._rng.choice(len(pop), size=self.sample_size, replace=False)
                parent = max((pop[i] for i in idx), key=lambda t: t[1])[0]
                child = self.space.mutate(parent, self._rng)
                k = self.space.canonical_key(child)
                if k not in keys:
                    keys.add(k)
                    out.append(child)
                    break
            else:  # the neighbourhood is exhausted: fall back to a random unseen architecture
                out += self.space.sample_unique(self._rng, 1, exclude=keys)
                if out:
                    keys.add(self.space.canonical_key(out[-1]))
        return out

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "population_size": self.population_size, "sample_size": self.sample_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._population.clear()
        for o in self._history:
            if o.value is not None:
                self._population.append((o.arch, self._internal(o.value)))
