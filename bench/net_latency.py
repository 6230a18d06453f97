"""Network-only latency of the redirector in torch: eager FP32, eager FP16 and FP16 CUDA graphs, per batch size.

    python bench/net_latency.py [--checkpoint engine/weights/redirector.pt] [--device cuda] [--json out.json]

On a GPU each figure is the median (and p95) of ``--iters`` timed calls measured with CUDA events after a
warm-up; a CUDA graph is captured once per batch size and replayed with fresh inputs copied into its static
buffers (what the torch backend of the corrector does). On a CPU only eager FP32 is timed.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import torch
from gpu_runtime import _time_gpu  # bench/ is this script's folder, hence on its import path

from engine.model import Redirector, RedirectorConfig
from engine.train.checkpoint import load_redirector


def _time(fn: Callable[[], object], iters: int, cuda: bool) -> dict[str, float]:
    """p50/p95/max milliseconds of ``fn`` (the timer of bench/gpu_runtime.py: CUDA events on a GPU)."""
    return _time_gpu(fn, iters, 10, cuda)


def _bench_batch(model: Redirector, batch: int, device: torch.device, iters: int) -> dict[str, object]:
    """Every timing of one batch size (eager FP32; on CUDA also eager FP16 and an FP16 CUDA graph)."""
    cuda = device.type == "cuda"
    cfg = model.config
    strip = torch.rand(batch, 3, cfg.height, cfg.width, device=device)
    target = torch.zeros(batch, 2, device=device)
    strength = torch.ones(batch, device=device)
    row: dict[str, object] = {}
    with torch.inference_mode():
        row["eager_fp32"] = _time(lambda: model(strip, target, strength), iters, cuda)
        if not cuda:
            return row
        half = Redirector(cfg).to(device).eval()
        half.load_state_dict(model.state_dict())
        half.half()
        s16, t16, g16 = strip.half(), target.half(), strength.half()
        row["eager_fp16"] = _time(lambda: half(s16, t16, g16), iters, cuda)
        stream = torch.cuda.Stream(device)  # type: ignore[no-untyped-call]
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            for _ in range(3):  # warm up on a side stream before capture, as CUDA graphs require
                half(s16, t16, g16)
        torch.cuda.current_stream(device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = half(s16, t16, g16)
        fresh = torch.rand_like(s16)

        def replay() -> None:
            s16.copy_(fresh)
            graph.replay()

        row["graph_fp16"] = _time(replay, iters, cuda)
        s16.copy_(strip.half())
        graph.replay()
        err = (static_out.strip_out.float() - model(strip, target, strength).strip_out).abs().max()
        row["fp16_max_abs_diff"] = float(err)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="redirector checkpoint (default: untrained)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batches", default="1,8,32", help="comma-separated batch sizes")
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if args.checkpoint is not None:
        model, _, _ = load_redirector(args.checkpoint, device)
    else:
        model = Redirector(RedirectorConfig()).to(device).eval()
    results: dict[str, object] = {
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "torch": torch.__version__,
        "checkpoint": str(args.checkpoint),
        "batches": {},
    }
    for batch in (int(b) for b in args.batches.split(",")):
        row = _bench_batch(model, batch, device, args.iters)
        results["batches"][str(batch)] = row  # type: ignore[index]
        print(batch, json.dumps(row))
    text = json.dumps(results, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
