"""Random number generators (torch.Generator): a seedable stream of random numbers that
smolgrad's sampling functions draw from. A leaf module: it imports nothing of smolgrad."""

from __future__ import annotations

import numpy as np


class Generator:
    """A seedable random number generator (torch.Generator); pass it as `generator=` to
    sampling functions such as multinomial, or seed the global one with manual_seed."""

    def __init__(self, device="cpu") -> None:
        self.device = device
        self.seed()

    def manual_seed(self, seed: int) -> Generator:
        """Restart the stream from `seed`; returns self."""
        seed = int(seed)
        if seed < 0:
            raise RuntimeError(f"Generator.manual_seed: seed must be non-negative, got {seed}")
        self._initial_seed = seed
        self._rng = np.random.default_rng(seed)
        self._philox_offset = 0
        return self

    def seed(self) -> int:
        """Reseed from a non-deterministic source; returns the new seed."""
        seed = int(np.random.SeedSequence().entropy % (2**63))
        self.manual_seed(seed)
        return seed

    def initial_seed(self) -> int:
        """The seed the current stream started from."""
        return self._initial_seed

    def get_state(self) -> dict:
        """The stream's state (restore it with set_state)."""
        return {"host": self._rng.bit_generator.state, "seed": self._initial_seed, "device_offset": self._philox_offset}

    def set_state(self, state: dict) -> Generator:
        """Continue the stream from a state returned by get_state."""
        self._rng.bit_generator.state = state["host"]
        self._initial_seed, self._philox_offset = state["seed"], state["device_offset"]
        return self

    def philox_key(self) -> tuple[int, int]:
        """(seed, offset) of the next draw made on the device (Philox 4x32-10, smolgrad/philox.py),
        advancing the offset so that draws never share a counter. Like PyTorch's CUDA
        generator, the device stream's whole state is these two integers."""
        key = (self._initial_seed & (2**64 - 1), self._philox_offset)
        self._philox_offset += 1
        return key

    @property
    def numpy_generator(self) -> np.random.Generator:
        """The NumPy generator the numbers are drawn from."""
        return self._rng

    def __repr__(self) -> str:
        return f"<smolgrad.Generator device={self.device!r} initial_seed={self._initial_seed}>"


default_generator = Generator()


def checked(generator: Generator | None) -> Generator:
    """`generator`, or the global one (seeded by manual_seed) for None."""
    if generator is None:
        return default_generator
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a smolgrad.Generator or None, got {type(generator).__name__}")
    return generator


def resolve(generator: Generator | None) -> np.random.Generator:
    """The NumPy generator behind `generator` (None: the global one, seeded by manual_seed)."""
    return checked(generator).numpy_generator
