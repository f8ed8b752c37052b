"""Independent Python model of sparsimix::Rng (splitmix64 seeding + xoshiro256**)."""
import torch

import st

M64 = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


class Xoshiro:
    """sparsimix::Rng: splitmix64 seeding, xoshiro256** next_u64, below(n) by rejection."""

    def __init__(self, seed):
        self.s = []
        state = seed
        for _ in range(4):
            state, v = splitmix64(state)
            self.s.append(v)

    def next_u64(self):
        s = self.s
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def below(self, n):
        threshold = ((1 << 64) - n) % n
        while True:
            r = self.next_u64()
            if r >= threshold:
                return r % n


def xoshiro_stream(seed, n):
    rng = Xoshiro(seed)
    return [rng.next_u64() for _ in range(n)]


def generate(out):
    vals = xoshiro_stream(42, 16)
    as_signed = [v - (1 << 64) if v >= (1 << 63) else v for v in vals]
    st.save(out / "rng.safetensors", {"seed42": torch.tensor(as_signed, dtype=torch.int64)})
