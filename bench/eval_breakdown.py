"""Where a redirector's errors come from: gaze and head redirection error, and the judge's floor, per condition.

    python bench/eval_breakdown.py [--checkpoint engine/weights/redirector.pt] [--judge engine/weights/estimator_b.pt]
                                   [--pairs 1024] [--json docs/model/eval_breakdown.json] [--mirror] [--judge-mirror]

The test pairs are those ``mirada eval --device cpu`` scores (test subjects, sampler seed 0, batches of 32),
rendered again with what only the renderer knows (glasses, sensor scale). Each row averages the pairs of one
condition of the target: eyes closed, partly closed (openness under 0.5) or open; glasses or not; each sensor
scale; gaze or head far from the camera axis; a large or a small gaze change from the source. A condition whose
floor is high is one the judge cannot read, whatever the redirector does; "unredirected" is what doing nothing
scores there (the judge's gaze of the source against the target gaze).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
from torch import Tensor

from engine.data.synth import Split, SynthSampler
from engine.eval.metrics import SourceRedirection
from engine.strip import angular_error_deg
from engine.train.checkpoint import load_redirector
from engine.train.estimator import Judge, MirrorAveraged, load_estimator

_ERRORS = (
    "gaze_unredirected_deg",
    "gaze_redirection_deg",
    "head_redirection_deg",
    "judge_gaze_floor_deg",
    "judge_head_floor_deg",
)


@torch.no_grad()
def per_pair(
    checkpoint: Path,
    judge_path: Path,
    pairs: int,
    batch_size: int = 32,
    mirror: bool = False,
    judge_mirror: bool = False,
) -> tuple[dict[str, Tensor], tuple[float, ...]]:
    """Per-pair errors (degrees) and conditions of the first ``pairs`` evaluation pairs, on the CPU, and the
    sensor scales the checkpoint's data was drawn at; ``mirror`` scores the mirror ensemble, ``judge_mirror``
    reads with the judge mirror-averaged."""
    model, config, _ = load_redirector(checkpoint, torch.device("cpu"))
    estimator = load_estimator(judge_path, torch.device("cpu"))
    judge: Judge = MirrorAveraged(estimator) if judge_mirror else estimator
    model.eval()
    judge.eval()
    sampler = SynthSampler(config.synth, Split.TEST, 0, batch_size, "cpu")
    parts: dict[str, list[Tensor]] = {}
    done, index = 0, 0
    while done < pairs:
        n = min(batch_size, pairs - done)
        batch, _, target = sampler.render_pairs(index, n)
        s, t = batch.source, batch.target
        out = SourceRedirection(model, s.image, mirror).to(t.gaze, t.head)
        read = judge(torch.cat((out, t.image, s.image)))
        g, h = read.gaze.split(n), read.head.split(n)  # output, target render, source render
        row = {
            # what doing nothing scores: the judge's gaze of the source against the target gaze
            "gaze_unredirected_deg": angular_error_deg(g[2], t.gaze),
            "gaze_redirection_deg": angular_error_deg(g[0], t.gaze),
            "head_redirection_deg": angular_error_deg(h[0], t.head),
            "judge_gaze_floor_deg": angular_error_deg(g[1], t.gaze),
            "judge_head_floor_deg": angular_error_deg(h[1], t.head),
            "closed": t.closed,
            "openness": t.openness,
            "glasses": target.glasses,
            "scale": target.scale,
            "gaze_off_axis_deg": torch.rad2deg(t.gaze.abs().amax(dim=1)),
            "head_off_axis_deg": torch.rad2deg(t.head.abs().amax(dim=1)),
            "gaze_change_deg": angular_error_deg(s.gaze, t.gaze),
        }
        for key, value in row.items():
            parts.setdefault(key, []).append(value.float())
        done += n
        index += 1
    return {key: torch.cat(values) for key, values in parts.items()}, config.synth.render_scales


def conditions(rows: dict[str, Tensor], scales: tuple[float, ...]) -> dict[str, Tensor]:
    """Boolean masks of the reported conditions, in table order."""
    closed = rows["closed"] > 0.5
    masks = {
        "all pairs": torch.ones_like(closed),
        "eyes closed": closed,
        "eyes partly closed (openness < 0.5)": ~closed & (rows["openness"] < 0.5),
        "eyes open (openness >= 0.5)": ~closed & (rows["openness"] >= 0.5),
        "glasses": rows["glasses"] > 0.5,
        "no glasses": rows["glasses"] < 0.5,
    }
    for scale in scales:
        masks[f"sensor scale {scale:g}"] = (rows["scale"] - scale).abs() < 1e-6
    masks["gaze beyond 20° (pitch or yaw)"] = rows["gaze_off_axis_deg"] > 20.0
    masks["gaze within 20°"] = rows["gaze_off_axis_deg"] <= 20.0
    masks["head beyond 15° (pitch or yaw)"] = rows["head_off_axis_deg"] > 15.0
    masks["head within 15°"] = rows["head_off_axis_deg"] <= 15.0
    masks["gaze moved more than 20°"] = rows["gaze_change_deg"] > 20.0
    masks["gaze moved 20° or less"] = rows["gaze_change_deg"] <= 20.0
    return masks


def breakdown(rows: dict[str, Tensor], scales: tuple[float, ...]) -> dict[str, dict[str, float]]:
    """Mean errors and pair count per condition (empty conditions are left out)."""
    table: dict[str, dict[str, float]] = {}
    for name, mask in conditions(rows, scales).items():
        count = int(mask.sum())
        if count:
            table[name] = {"pairs": count} | {key: float(rows[key][mask].mean()) for key in _ERRORS}
    return table


def markdown(table: dict[str, dict[str, float]]) -> str:
    """The breakdown as a markdown table."""
    lines = [
        "| condition | pairs | gaze, unredirected (°) | gaze redir. (°) | head redir. (°) | judge gaze floor (°) "
        "| judge head floor (°) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in table.items():
        cells = [name, str(int(row["pairs"]))] + [f"{row[key]:.2f}" for key in _ERRORS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("engine/weights/redirector.pt"))
    parser.add_argument("--judge", type=Path, default=Path("engine/weights/estimator_b.pt"))
    parser.add_argument("--pairs", type=int, default=1024)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--mirror", action="store_true", help="score the mirror ensemble")
    parser.add_argument("--judge-mirror", action="store_true", help="read with the judge mirror-averaged")
    args = parser.parse_args()
    rows, scales = per_pair(args.checkpoint, args.judge, args.pairs, mirror=args.mirror, judge_mirror=args.judge_mirror)
    table = breakdown(rows, scales)
    text = markdown(table)
    print(text)
    if args.json is not None:
        command = f"python bench/eval_breakdown.py --checkpoint {args.checkpoint} --judge {args.judge}"
        command += " --mirror" if args.mirror else ""
        command += " --judge-mirror" if args.judge_mirror else ""
        payload = {"command": f"{command} --pairs {args.pairs}", "device": "cpu", "conditions": table}
        if not all(math.isfinite(v) for row in table.values() for v in row.values()):
            raise FloatingPointError("non-finite errors in the breakdown")
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
