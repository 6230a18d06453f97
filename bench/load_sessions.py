"""Load benchmark of the service: how many concurrent loopback sessions hold >= 25 fps each.

    python bench/load_sessions.py --sessions 1,2,3,4 [--size 640x480] [--seconds 20] [--json out.json]
    python bench/load_sessions.py --url http://127.0.0.1:8000 --sessions 3     # against a running service

For each session count it starts ``mirada serve`` (the bundled weights, backend auto, that many sessions
allowed) in its own process, unless ``--url`` is given, then opens the sessions from this process with aiortc,
each sending an animated real face (scikit-image's astronaut) at 30 fps, and measures over ``--seconds`` after a
warm-up:

- per-session frame rate of corrected frames received back;
- added latency, decoded frame in -> corrected frame out, as the service measures it (p50/p95, from
  ``GET /api/v1/sessions/{id}``);
- the client's round trip, sent -> received back (p50/p95; both encodes and decodes, jitter buffers included);
- then one more session than the limit is refused with 503 while the others keep their frame rate.

Client and service share this machine's cores, as a browser and a local service do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.loopback import FaceVideoTrack, LoopbackClient, face_frames

TARGET_FPS = 25.0


@dataclass
class SessionResult:
    fps: float
    added_ms_p50: float | None
    added_ms_p95: float | None
    rtt_ms_p50: float | None
    rtt_ms_p95: float | None
    dropped: int
    uncorrected: int


@dataclass
class RunResult:
    sessions: int
    size: str
    seconds: float
    per_session: list[SessionResult]
    min_fps: float
    worst_added_ms_p95: float | None
    over_limit_status: int | None
    fps_while_refused: list[float]
    backend: str | None
    server_cpu_ms_per_frame: float | None
    client_cpu_ms_per_frame: float
    load_average: tuple[float, float, float]

    @property
    def holds(self) -> bool:
        return self.min_fps >= TARGET_FPS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _process_cpu_s(pid: int | None) -> float | None:
    """CPU seconds (user + system) a process has used so far (Linux), None if unknown."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Service:
    """``mirada serve`` in a child process."""

    def __init__(self, max_sessions: int, backend: str, workers: int) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "MIRADA_MAX_SESSIONS": str(max_sessions), "MIRADA_BACKEND": backend}
        env["MIRADA_WORKERS"] = str(workers)
        command = [sys.executable, "-c", "from engine.cli import app; app()", "serve", "--port", str(self.port)]
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait_ready(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"mirada serve exited with {self.process.returncode}:\n{err[-3000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError("the service did not become ready")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def run(
    url: str, sessions: int, width: int, height: int, seconds: float, warmup: float, server_pid: int | None
) -> RunResult:
    frames = face_frames(width, height, 60)
    clients = [LoopbackClient(url, FaceVideoTrack(frames, fps=30.0), keep=4) for _ in range(sessions)]
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        try:
            for client in clients:
                await client.connect(timeout=60)
            await asyncio.sleep(warmup)
            counts = [c.count for c in clients]
            rtt_start = [len(c.rtts_ms) for c in clients]
            cpu_server, cpu_client = _process_cpu_s(server_pid), _own_cpu_s()
            start = time.perf_counter()
            await asyncio.sleep(seconds)
            elapsed = time.perf_counter() - start
            cpu_client = _own_cpu_s() - cpu_client
            end_server = _process_cpu_s(server_pid)
            cpu_server = None if cpu_server is None or end_server is None else end_server - cpu_server
            delivered = sum(c.count - n for c, n in zip(clients, counts, strict=True))
            rtts = [c.rtts_ms[n:] for c, n in zip(clients, rtt_start, strict=True)]
            fps = [(c.count - n) / elapsed for c, n in zip(clients, counts, strict=True)]
            infos = [(await http.get(f"/api/v1/sessions/{c.session_id}", headers=c.headers())).json() for c in clients]
            ready = (await http.get("/readyz")).json()

            # One more than the limit: refused, and the others keep going.
            over_status: int | None = None
            if ready["sessions"] >= ready["max_sessions"]:
                extra = LoopbackClient(url, FaceVideoTrack(frames, fps=30.0), keep=2)
                try:
                    await extra.connect(timeout=30)
                    over_status = 201
                except httpx.HTTPStatusError as err:
                    over_status = err.response.status_code
                finally:
                    await extra.pc.close()
                counts = [c.count for c in clients]
                await asyncio.sleep(3.0)
                fps_refused = [(c.count - n) / 3.0 for c, n in zip(clients, counts, strict=True)]
            else:
                fps_refused = []
        finally:
            for client in clients:
                await client.close()
    per_session = []
    for rate, info, rtt in zip(fps, infos, rtts, strict=True):
        per_session.append(
            SessionResult(
                fps=round(rate, 1),
                added_ms_p50=info["latency_ms_p50"],
                added_ms_p95=info["latency_ms_p95"],
                rtt_ms_p50=_round(_quantile(rtt, 0.5)),
                rtt_ms_p95=_round(_quantile(rtt, 0.95)),
                dropped=info["frames_dropped"],
                uncorrected=info["frames_uncorrected"],
            )
        )
    added = [s.added_ms_p95 for s in per_session if s.added_ms_p95 is not None]
    return RunResult(
        sessions=sessions,
        size=f"{width}x{height}",
        seconds=round(elapsed, 1),
        per_session=per_session,
        min_fps=min(s.fps for s in per_session),
        worst_added_ms_p95=_round(max(added)) if added else None,
        over_limit_status=over_status,
        fps_while_refused=[round(f, 1) for f in fps_refused],
        backend=ready.get("backend"),
        server_cpu_ms_per_frame=None if cpu_server is None else round(cpu_server * 1000 / max(delivered, 1), 1),
        client_cpu_ms_per_frame=round(cpu_client * 1000 / max(delivered, 1), 1),
        load_average=os.getloadavg(),
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", default="1,2,3", help="Comma-separated session counts to try.")
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--url", help="Use this running service instead of starting one per count.")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    results: list[RunResult] = []
    for count in (int(v) for v in args.sessions.split(",")):
        service = None if args.url else Service(count, args.backend, args.workers)
        try:
            if service is not None:
                service.wait_ready()
            url = args.url or (service.url if service else "")
            pid = service.process.pid if service is not None else None
            result = asyncio.run(run(url, count, width, height, args.seconds, args.warmup, pid))
        finally:
            if service is not None:
                service.stop()
        results.append(result)
        rows = ", ".join(
            f"{s.fps:.1f} fps / added p50 {s.added_ms_p50} p95 {s.added_ms_p95} ms / rtt p95 {s.rtt_ms_p95} ms"
            for s in result.per_session
        )
        print(
            f"{count} session(s) {result.size} on {result.backend}: min {result.min_fps:.1f} fps "
            f"({'holds' if result.holds else 'below'} {TARGET_FPS:.0f}); "
            f"worst added p95 {result.worst_added_ms_p95} ms; "
            f"session {count + 1}: HTTP {result.over_limit_status}, others at {result.fps_while_refused} fps; "
            f"CPU per frame: service {result.server_cpu_ms_per_frame} ms, client {result.client_cpu_ms_per_frame} ms; "
            f"load average {result.load_average[0]:.1f}\n  {rows}",
            flush=True,
        )
    holding = [r.sessions for r in results if r.holds]
    costs = [r.server_cpu_ms_per_frame + r.client_cpu_ms_per_frame for r in results if r.server_cpu_ms_per_frame]
    # What the cores could carry if nothing else ran: CPU milliseconds per corrected frame (service and client,
    # which a local browser also costs) against the cores' milliseconds per second.
    estimate = int((os.cpu_count() or 1) * 1000 / (TARGET_FPS * min(costs))) if costs else None
    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "capacity_sessions_at_25fps": max(holding) if holding else 0,
        "cpu_bound_estimate_sessions_at_25fps": estimate,
        "runs": [{**asdict(r), "holds": r.holds} for r in results],
    }
    print(
        f"capacity: {summary['capacity_sessions_at_25fps']} session(s) at >= {TARGET_FPS:.0f} fps each measured; "
        f"{estimate} by CPU cost per frame on {os.cpu_count()} otherwise idle cores"
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
