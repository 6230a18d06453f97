"""Session 11: the CPU ablation's table with its short STED seed-0 run replaced by the same run trained to the
steps the other runs reached, and its plot.

``mirada train --ablation --max-minutes 10`` stopped STED seed 0 at 263 steps while the seven other runs reached
350-381 (the first run of the process was slower). This script reads the ablation's ``ablation.json`` and the
``mirada eval --json`` of STED seed 0 trained to ``STEPS`` (same seed, so the same batches from the start), checks
that both evaluations scored the same test pairs (same judge floors), and prints the table of
``engine.eval.metrics.markdown_table`` with that row swapped in. It also draws the ablation's plot
(``engine.train.cli.plot_ablation``; the ablation itself stopped on that plot's bug, fixed in this session) from
the runs' TensorBoard logs into ``OUT.png``.

Run as: ``python docs/model/session11/equal_steps_table.py ABLATION_DIR STED0_RUN_DIR OUT.png``
(``STED0_RUN_DIR/eval.json`` is the rerun's ``mirada eval --json``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from engine.eval.metrics import RedirectionMetrics, markdown_table
from engine.train.cli import VARIANTS, plot_ablation, variant_slug
from engine.train.trainer import TrainSummary


def summary_from_logs(run_dir: Path) -> TrainSummary:
    """A run's loss history, read back from its TensorBoard events (the trainer logs every term as loss/<name>)."""
    events = EventAccumulator(str(run_dir / "tb"))
    events.Reload()
    history: dict[int, dict[str, float]] = {}
    for tag in events.Tags()["scalars"]:
        if tag.startswith("loss/"):
            for event in events.Scalars(tag):
                history.setdefault(event.step, {})[tag.removeprefix("loss/")] = event.value
    steps = sorted(history)
    return TrainSummary(steps[-1], history[steps[-1]], [(step, history[step]) for step in steps])


def main(ablation_dir: Path, rerun_dir: Path, plot: Path) -> None:
    rerun_eval = rerun_dir / "eval.json"
    numbers = json.loads((ablation_dir / "ablation.json").read_text())
    rerun = json.loads(rerun_eval.read_text())
    first = numbers["metrics"]["STED"][0]
    for key in ("pairs", "judge_gaze_floor_deg", "judge_head_floor_deg", "open_pairs"):
        if abs(float(first[key]) - float(rerun[key])) > 1e-6:
            raise ValueError(f"the rerun was scored on other pairs: {key} {first[key]} vs {rerun[key]}")
    fields = RedirectionMetrics.__dataclass_fields__
    metrics = {
        name: [RedirectionMetrics(**{k: v for k, v in m.items() if k in fields}) for m in runs]
        for name, runs in numbers["metrics"].items()
    }
    metrics["STED"][0] = RedirectionMetrics(**{k: v for k, v in rerun.items() if k in fields})
    # The run ended on the checkpoint it wrote last: its file name holds the step.
    steps = {
        run.parents[2].name + "/" + run.parents[1].name: int(run.stem.removeprefix("step_"))
        for run in sorted(ablation_dir.glob("*/seed_*/checkpoints/step_*.pt"))
    }
    print(f"Steps per run (before the rerun): {steps}; STED seed 0 rerun: {rerun_steps(rerun_dir)}")
    print(markdown_table(metrics))
    summaries = {
        name: [summary_from_logs(ablation_dir / variant_slug(name) / f"seed_{k}") for k in range(len(metrics[name]))]
        for name, _, _ in VARIANTS
    }
    summaries["STED"][0] = summary_from_logs(rerun_dir)
    plot_ablation(metrics, summaries, plot)


def rerun_steps(rerun_dir: Path) -> int | None:
    """The rerun's steps, from the name of its last checkpoint."""
    found = sorted(rerun_dir.glob("checkpoints/step_*.pt"))
    return int(found[-1].stem.removeprefix("step_")) if found else None


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
