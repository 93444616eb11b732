"""A stand-in for DecodedWaves in LengthBatches tests: lengths only, silent int16 batches. (A module of its own, as
tests/serve/servers.py is: test files import it by name.)"""
import torch


class FakeWaves:
    def __init__(self, lengths):
        self.lengths = torch.tensor(lengths)

    def batch(self, rows):
        lens = self.lengths[rows]
        return torch.zeros(len(rows), int(lens.max()), dtype=torch.int16), lens
