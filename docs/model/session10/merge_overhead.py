"""One-off (session 10): what the mirror ensemble costs beyond running the network on twice the strips.

    PYTHONPATH=. python docs/model/session10/merge_overhead.py

The shipped network in the torch backend on the CPU: the plain network at batch 1 and 2, and the ensemble
(MirrorEnsemble, the merge in the same graph) at batch 1; median of 100 calls after 10 warm-up calls, on one and
two threads.
"""
import time

import numpy as np

from engine.model.mirror import MirrorEnsemble
from engine.runtime.backends import TorchBackend
from engine.weights import load_default_model

model = load_default_model("cpu")
rng = np.random.default_rng(0)
for threads in (1, 2):
    plain = TorchBackend(model, "cpu", num_threads=threads)
    ensemble = TorchBackend(MirrorEnsemble.from_redirector(model), "cpu", num_threads=threads)
    for name, backend, batch in (("plain", plain, 1), ("plain", plain, 2), ("ensemble", ensemble, 1)):
        x = rng.random((batch, 3, 64, 256), dtype=np.float32)
        g, k = np.zeros((batch, 2), np.float32), np.ones(batch, np.float32)
        for _ in range(10):
            backend.run(x, g, k)
        times = []
        for _ in range(100):
            start = time.perf_counter()
            backend.run(x, g, k)
            times.append(time.perf_counter() - start)
        print(f"threads {threads} {name:8s} batch {batch}: {np.median(times) * 1e3:.2f} ms", flush=True)
