"""One-off (session 10): the host cost of the mirror ensemble's merge, around a backend that costs nothing.

    PYTHONPATH=. python docs/model/session10/merge_overhead.py

Median of 200 calls at batch 1 after 20 warm-up calls, torch on 1 and 2 threads.
"""
import time

import numpy as np
import torch

from engine.runtime.backends.mirror import MirroredBackend
from tests.runtime.fakes import FakeBackend

for threads in (1, 2):
    torch.set_num_threads(threads)
    inner = FakeBackend()
    net = MirroredBackend(inner)
    x = np.random.rand(1, 3, 64, 256).astype(np.float32)
    g, k = np.zeros((1, 2), np.float32), np.ones(1, np.float32)
    for backend in (inner, net):
        for _ in range(20):
            backend.run(x, g, k)
        times = []
        for _ in range(200):
            start = time.perf_counter()
            backend.run(x, g, k)
            times.append(time.perf_counter() - start)
        print(threads, backend.name, f"{np.median(times) * 1e3:.3f} ms")
