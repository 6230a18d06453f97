"""GPU timing of the corrector's network and its per-frame path at 1280 x 720 (landmarks excluded).

    python bench/gpu_runtime.py                      # on a CUDA machine: about 1-2 minutes
    python bench/gpu_runtime.py --device cpu --quick  # the same code on a CPU, as a check (about 20 s)

Needs only torch, numpy and OpenCV (no MediaPipe, pydantic or ONNX Runtime): the face landmarks of the frame
are precomputed (``bench/fixtures/astronaut_1280x720_landmarks.npy``, MediaPipe's 478 points of
``bench/fixtures/astronaut_1280x720.jpg``, scikit-image's astronaut photo placed in a 1280 x 720 frame).

It measures, each as p50/p95 over ``--iters`` runs after a warm-up:

* **network** at batch 1, 8 and 32: eager float32 and eager FP16 autocast, and the CUDA-graph replay of each
  variant of the torch backend (:data:`VARIANTS`: ``amp``, the default, fp16 autocast with the weights cast
  once; ``fp16``, the whole network in half precision; each also with channels-last convolutions; and the
  backend as it was before, autocast over float32 weights), timed with CUDA events, each with its largest
  difference from float32 eager; plus ``TorchBackend.run`` with host arrays in and out (wall clock), which adds
  the copies, and the same for the mirror ensemble (:class:`MirrorEnsemble`: twice the strips, merged in the graph);
* **per-frame path** without landmarks, wall clock with the GPU synchronised at the end of each frame:
  ``host``: pose (OpenCV solvePnP) + strip cut (OpenCV) + network (CUDA graph, host in/out) + paste-back
  (OpenCV) written in place, i.e. exactly :class:`engine.runtime.Corrector` with the torch CUDA backend as the
  service and ``mirada correct`` run it; ``host_with_frame_copy``: the same writing into a copy of the frame
  (``Corrector.process`` without ``in_place``); ``host_mirror_ensemble``: ``host`` with the mirror ensemble;
  ``device``: pose on the CPU, then the upload of the face's crop (the strip's footprint, not the whole frame),
  strip cut + network + paste-back in torch on the GPU, and only the eye boxes copied back
  (:mod:`engine.runtime.torch_geometry`). If a variant other than the default is the fastest acceptable one,
  the frame path runs with it too.

Prints a JSON summary and writes it to ``$OUT/gpu_runtime.json`` when ``OUT`` is set (or to ``--json PATH``).
Weights: ``engine/weights/redirector.pt`` if present, else an untrained network of the same architecture (the
timing is the same; the summary says which).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script from anywhere, without installing the package

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

from engine.model import Redirector, RedirectorConfig  # noqa: E402
from engine.model.mirror import MirrorEnsemble  # noqa: E402
from engine.runtime.backends.base import Backend  # noqa: E402
from engine.runtime.backends.torch_backend import Precision, TorchBackend  # noqa: E402
from engine.runtime.paste import face_patches, make_eye_regions, write_patches  # noqa: E402
from engine.runtime.pose import HeadPose, PoseEstimator, camera_matrix  # noqa: E402
from engine.runtime.strip_cut import cut_strip, frame_to_strip_homography, strip_to_chw  # noqa: E402
from engine.runtime.torch_geometry import (  # noqa: E402
    boxes_to_host,
    cut_strip_torch,
    face_crop,
    frame_to_tensor,
    paste_face_torch,
)
from engine.strip import DEFAULT_STRIP  # noqa: E402
from engine.weights import DEFAULT_CHECKPOINT, load_default_model  # noqa: E402

FIXTURES = ROOT / "bench" / "fixtures"
FRAME_PATH = FIXTURES / "astronaut_1280x720.jpg"
LANDMARKS_PATH = FIXTURES / "astronaut_1280x720_landmarks.npy"
TARGETS_MS = {"network_batch1": 0.5, "frame_path": 3.0}


def _stats(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "p50_ms": round(statistics.median(ordered), 4),
        "p95_ms": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 4),
        "max_ms": round(ordered[-1], 4),
    }


def _time_gpu(fn: Callable[[], object], iters: int, warmup: int, cuda: bool) -> dict[str, float]:
    """Device time of ``fn`` (CUDA events) on a GPU, wall time on a CPU."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        if cuda:
            start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
            end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(float(start.elapsed_time(end)))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return _stats(times)


def _time_wall(
    fn: Callable[[], object], iters: int, warmup: int, cuda: bool, setup: Callable[[], object] | None = None
) -> dict[str, float]:
    """Wall time of ``fn`` with the GPU synchronised at the end (what a frame costs the caller); ``setup`` runs
    untimed before each call."""
    for _ in range(warmup):
        if setup is not None:
            setup()
        fn()
    if cuda:
        torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return _stats(times)


def load_model() -> tuple[Redirector, str]:
    """The shipped redirector if its checkpoint is here, else an untrained one (same architecture and cost)."""
    try:
        return load_default_model("cpu"), str(DEFAULT_CHECKPOINT.relative_to(ROOT))
    except FileNotFoundError:
        return Redirector(RedirectorConfig()).eval(), "untrained (engine/weights/redirector.pt not found)"


# The torch backend's CUDA variants: (precision, channels_last). "amp" without channels_last is the default.
VARIANTS: dict[str, tuple[Precision, bool]] = {
    "amp": ("amp", False),
    "amp_channels_last": ("amp", True),
    "fp16": ("fp16", False),
    "fp16_channels_last": ("fp16", True),
}
# A variant is acceptable when its outputs stay this close to float32 eager (strip pixels, degrees).
MAX_FLOW_DIFF_PX = 0.05
MAX_GAZE_DIFF_DEG = 0.2


def _graph_row(
    backend: TorchBackend,
    on_dev: tuple[torch.Tensor, ...],
    reference: tuple[torch.Tensor, ...],
    iters: int,
    warmup: int,
) -> dict[str, Any] | str:
    """CUDA-graph replay time of ``backend`` for these inputs, and how far its outputs are from float32 eager."""
    with torch.inference_mode():
        graph = backend._graph_for(int(on_dev[0].shape[0]))  # captures on first use
        if graph is None:
            return "capture failed (see the log); the backend runs this batch eagerly"
        for static, value in zip(graph.inputs, on_dev, strict=True):
            static.copy_(value)
        graph.graph.replay()
        flow_diff = float((graph.outputs[1] - reference[1]).abs().max())
        gaze_diff = float(torch.rad2deg((graph.outputs[4] - reference[4]).abs().max()))
        row: dict[str, Any] = _time_gpu(graph.graph.replay, iters, warmup, True)
    row["flow_max_abs_diff_px"] = round(flow_diff, 5)
    row["gaze_max_abs_diff_deg"] = round(gaze_diff, 5)
    row["acceptable"] = flow_diff <= MAX_FLOW_DIFF_PX and gaze_diff <= MAX_GAZE_DIFF_DEG
    return row


def bench_network(
    model: Redirector, device: torch.device, batches: tuple[int, ...], iters: int, warmup: int
) -> dict[str, Any]:
    """Network latency per batch size: eager fp32 and fp16 autocast, graph replay of each backend variant (on a
    GPU), and ``backend.run`` with host arrays in and out."""
    cuda = device.type == "cuda"
    geo = DEFAULT_STRIP
    backend = TorchBackend(model, device, max_batch=max(batches))
    variants: dict[str, TorchBackend] = {}
    if cuda:
        for name, (precision, channels_last) in VARIANTS.items():
            variants[name] = (
                backend
                if (precision, channels_last) == (backend.precision, backend.channels_last)
                else TorchBackend(
                    model, device, precision=precision, channels_last=channels_last, max_batch=max(batches)
                )
            )
        # The backend as it was before: autocast over float32 weights, so every replay casts each weight again.
        before = TorchBackend(model, device, precision="amp", max_batch=max(batches))
        before._net = before.model
        variants["amp_fp32_weights_before"] = before
    mirrored = TorchBackend(MirrorEnsemble.from_redirector(model), device, max_batch=max(batches))
    result: dict[str, Any] = {"backend": backend.name}
    gen = torch.Generator().manual_seed(0)
    for batch in batches:
        strips = torch.rand(batch, 3, geo.height, geo.width, generator=gen)
        gaze = (torch.rand(batch, 2, generator=gen) - 0.5) * 0.5
        strength = torch.ones(batch)
        on_dev = tuple(t.to(device) for t in (strips, gaze, strength))
        row: dict[str, Any] = {}
        with torch.inference_mode():
            row["eager_fp32"] = _time_gpu(partial(backend.model, *on_dev), iters, warmup, cuda)
            reference = tuple(t.clone() for t in backend.model(*on_dev))
            if cuda:
                with torch.autocast("cuda", dtype=torch.float16):
                    row["eager_fp16_autocast"] = _time_gpu(partial(backend.model, *on_dev), iters, warmup, cuda)
        for name, variant in variants.items():
            row[f"graph_{name}"] = _graph_row(variant, on_dev, reference, iters, warmup)
        host = tuple(t.numpy() for t in (strips, gaze, strength))
        row["backend_run_host_io"] = _time_wall(partial(backend.run, *host), iters, warmup, cuda)
        row["mirror_ensemble_backend_run_host_io"] = _time_wall(partial(mirrored.run, *host), iters, warmup, cuda)
        # The host path end to end (staging, one upload, replay, one download) against float32 eager.
        got = backend.run(*host)
        row["backend_run_flow_max_abs_diff_px"] = round(float(np.abs(got.flow - reference[1].cpu().numpy()).max()), 5)
        result[f"batch_{batch}"] = row
    timed = {
        name: row["p50_ms"]
        for name, row in ((n, result["batch_1"].get(f"graph_{n}")) for n in VARIANTS)
        if isinstance(row, dict) and row["acceptable"]
    }
    result["fastest_acceptable_variant"] = min(timed, key=lambda n: timed[n]) if timed else None
    return result


def bench_frame_path(
    model: Redirector, device: torch.device, iters: int, warmup: int, variant: str = "amp"
) -> dict[str, Any]:
    """The per-frame path at 1280 x 720 without landmarks, on the host geometry (in place, as the service and
    ``mirada correct`` run it, and with a copy of the frame) and on the device geometry, with the torch backend's
    ``variant`` (:data:`VARIANTS`) on a GPU."""
    cuda = device.type == "cuda"
    bgr = cv2.imread(str(FRAME_PATH), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read the fixture frame {FRAME_PATH}")
    frame: NDArray[np.uint8] = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)
    landmarks = np.load(LANDMARKS_PATH).astype(np.float64)
    height, width = frame.shape[:2]
    camera = camera_matrix(width, height)
    estimator = PoseEstimator()
    first = estimator.estimate(landmarks, camera)
    if first is None:
        raise RuntimeError("the head-pose fit failed on the fixture landmarks")
    regions = make_eye_regions()
    precision, channels_last = VARIANTS[variant] if cuda else ("fp32", False)
    backend = TorchBackend(model, device, precision=precision, channels_last=channels_last, max_batch=1)
    # The mirror ensemble (mirada serve --mirror) in a backend of its own.
    mirrored = TorchBackend(
        MirrorEnsemble.from_redirector(model), device, precision=precision, channels_last=channels_last, max_batch=1
    )
    target = np.zeros((1, 2), np.float32)
    strength = np.ones(1, np.float32)
    strip_batch = np.empty((1, 3, DEFAULT_STRIP.height, DEFAULT_STRIP.width), np.float32)
    state: dict[str, HeadPose] = {"pose": first}
    rngs = {"jitter": np.random.default_rng(0)}
    stages: dict[str, list[float]] = {"pose": [], "strip": [], "network": [], "paste": []}
    # The in-place path writes into ``work``; each run starts from the untouched frame (restored untimed).
    work = frame.copy()

    def restore() -> None:
        np.copyto(work, frame)

    def moved_landmarks() -> NDArray[np.float64]:
        # Sub-pixel jitter as from a tracker, so the pose fit works every frame as it would in a video.
        jittered: NDArray[np.float64] = landmarks + rngs["jitter"].normal(0.0, 0.3, landmarks.shape)
        return jittered

    def pose_and_homography() -> NDArray[np.float64]:
        pose = estimator.estimate(moved_landmarks(), camera, state["pose"]) or state["pose"]
        state["pose"] = pose
        return frame_to_strip_homography(camera, pose)

    def host_path(in_place: bool = True, net: Backend = backend) -> NDArray[np.uint8]:
        source = work if in_place else frame
        t0 = time.perf_counter()
        homography = pose_and_homography()
        t1 = time.perf_counter()
        strip_to_chw(cut_strip(source, homography), strip_batch[0])
        t2 = time.perf_counter()
        outputs = net.run(strip_batch, target, strength)
        t3 = time.perf_counter()
        # As Corrector.finish: patches from the untouched frame, then written (in place, or into a copy); the
        # corrector's default (Settings.residual_gain = 0) pastes the warp alone, no residual.
        patches = face_patches(source, homography, outputs.flow[0], None, 1.0, regions)
        out = source if in_place else source.copy()
        write_patches(out, patches)
        t4 = time.perf_counter()
        if in_place and net is backend:
            for name, a, b in (("pose", t0, t1), ("strip", t1, t2), ("network", t2, t3), ("paste", t3, t4)):
                stages[name].append((b - a) * 1e3)
        return out

    mask = torch.from_numpy(regions.mask).to(device).reshape(1, 1, *regions.mask.shape)
    target_t = torch.zeros(1, 2, device=device)
    strength_t = torch.ones(1, device=device)

    def device_path() -> NDArray[np.uint8]:
        homography = pose_and_homography()
        # Only the face's crop crosses the bus; cut and paste-back work in its coordinates.
        (x0, y0, x1, y1), to_strip = face_crop(homography, (height, width))
        crop = frame[y0:y1, x0:x1]
        crop_t = frame_to_tensor(crop, device)
        strip = cut_strip_torch(crop_t, to_strip).unsqueeze(0)
        _, flow, _, _, _, _ = backend.run_tensors(strip, target_t, strength_t)
        out_t = crop_t.clone()
        # The warp alone, like the host path (the corrector's default, Settings.residual_gain = 0).
        boxes = paste_face_torch(out_t, crop_t, to_strip, flow[0], None, 1.0, regions, mask)
        result = frame.copy()
        result[y0:y1, x0:x1] = boxes_to_host(out_t, crop, boxes)
        return result

    result: dict[str, Any] = {"frame": f"{width}x{height}", "face_box_px": _box(landmarks), "backend": backend.name}
    result["host"] = _time_wall(host_path, iters, warmup, cuda, setup=restore)
    result["host_stages"] = {name: _stats(values[warmup:]) for name, values in stages.items()}
    result["host_with_frame_copy"] = _time_wall(partial(host_path, False), iters, warmup, cuda)
    result["host_mirror_ensemble"] = _time_wall(partial(host_path, True, mirrored), iters, warmup, cuda, setup=restore)
    result["device"] = _time_wall(device_path, iters, warmup, cuda)
    # The implementations must agree: in place with a copy exactly, host with device up to OpenCV's fixed-point
    # interpolation.
    outputs = []
    for run in (host_path, partial(host_path, False), device_path):
        restore()
        state["pose"], rngs["jitter"] = first, np.random.default_rng(1)  # the same landmarks for the three
        outputs.append(run().copy())
    a, copied, b = outputs
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    result["in_place_equals_copy"] = bool(np.array_equal(a, copied))
    result["host_vs_device_max_abs_diff"] = int(diff.max())
    result["host_vs_device_pixels_over_2"] = int((diff > 2).sum())
    return result


def _box(landmarks: NDArray[np.float64]) -> list[int]:
    lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
    return [int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1])]


def main() -> None:
    """Run the benchmark and print (and save) its JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cuda or cpu")
    parser.add_argument("--quick", action="store_true", help="few iterations and batches 1 and 8 (a smoke test)")
    parser.add_argument("--iters", type=int, default=None, help="timed iterations (default 500, quick 10)")
    parser.add_argument("--json", type=Path, default=None, help="also write the summary here")
    args = parser.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    iters = args.iters if args.iters is not None else (10 if args.quick else 500)
    warmup = 3 if args.quick else 50
    batches = (1, 8) if args.quick else (1, 8, 32)
    if device.type == "cpu":
        torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    else:
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels once
    model, weights = load_model()
    started = time.perf_counter()
    summary: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.processor()})",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "weights": weights,
        "iters": iters,
        "network": bench_network(model, device, batches, iters, warmup),
    }
    fastest = summary["network"]["fastest_acceptable_variant"]
    summary["frame_path_1280x720"] = bench_frame_path(model, device, iters, warmup)
    if fastest is not None and fastest != "amp":
        summary[f"frame_path_1280x720_{fastest}"] = bench_frame_path(model, device, iters, warmup, fastest)
    net = summary["network"]["batch_1"].get("graph_amp")
    frame = summary["frame_path_1280x720"]
    summary["targets"] = {
        "network_batch1_p50_ms_le_0.5": isinstance(net, dict) and net["p50_ms"] <= TARGETS_MS["network_batch1"],
        "frame_path_p50_ms_le_3_host": frame["host"]["p50_ms"] <= TARGETS_MS["frame_path"],
        "frame_path_p50_ms_le_3_device": frame["device"]["p50_ms"] <= TARGETS_MS["frame_path"],
    }
    summary["seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(summary, indent=2)
    print(text)
    paths = [args.json] if args.json is not None else []
    if os.environ.get("OUT"):
        paths.append(Path(os.environ["OUT"]) / "gpu_runtime.json")
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
