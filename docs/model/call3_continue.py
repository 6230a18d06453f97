"""Device call 3 (session 4): judge B and the shipped redirector trained further, in parallel, on a larger cache.

    PYTHONPATH=. python docs/model/call3_continue.py      # on the GPU machine; $OUT receives the results

The renderer now makes about 25,000 strips/s eagerly on an H200 (it made 5,500 in call 1), so the cache is larger
(``NPAIRS``, default 65,536 pairs). Judge B continues from the shipped B and the redirector from the shipped
redirector (estimator A, the critic, stays as shipped), each for ``SECONDS``. Then both redirectors (shipped and
new) are scored on the same 1,024 test pairs by both judges (shipped and new); which one ships is decided from
that table, not here. Environment: ``DEV`` (cuda), ``NPAIRS``, ``SECONDS`` (330), ``EVAL`` (1024 pairs),
``BATCH`` (redirector pairs per step, 64), ``BBATCH`` (judge pairs per step, 128), ``BLR`` (the judge's rate,
1e-4), ``BSCHEDULE`` (cosine, over ``SECONDS``; or step, halved every ``BDECAY`` steps), ``PRECISION`` (fp32).

Since session 8 the new judge and the new redirector are calibrated (``engine.train.calibrate``, on ``CALPAIRS``
training pairs, 8,192) before that table is made, and since session 9 the new redirector's move gain too (against
the shipped critic A, on ``GAINPAIRS`` training pairs, 1,024); ``CALIBRATE=0`` runs it as session 4 did. The shipped
estimators it starts from are calibrated already, so the redirector now trains against an unbiased critic.
Since session 10 each redirector is scored also as the mirror ensemble (rows "... mirrored by ..."), and since
session 14 also by each judge mirror-averaged (session 12's less noisy reading, judges "..._b_mirror").
Session 14 also set the judge's rate to ``BLR`` (1e-4: session 12 found that a fresh Adam at 1e-3 undoes the
shipped judge in a few steps; session 4 ran this at 5e-4, from a weaker B) and added ``PRECISION`` (fp32 or bf16,
for both training runs; measure first with ``python bench/train_precision.py --device cuda``).
Session 15 trains the redirector with the ``warp`` loss (``WARP``, weight 200; 0 trains as before) and a flow bound
of ``FLOWPX`` strip pixels (16; the shipped network has 8), and scores what
the corrector pastes, the warp alone, for both redirectors (``warp_evaluation``, ``engine.eval.warp_eval``).
Session 16 adds the pupil loss (``PUPIL``, weight 5; 0 trains without it): the flow must take each target pupil
to the source's (``engine.train.losses.pupil_flow_loss``; the cache stores the renderer's pupil positions).
Session 17 adds the fold loss (``FOLD``, weight 300; 0 trains without it): the warp must not fold, which the
pupil term made it do on large moves (``engine.train.losses.fold_loss``).
A tiny CPU run that checks the script end to end:
``DEV=cpu NPAIRS=64 SECONDS=10 EVAL=32 BATCH=4 BBATCH=4 CALPAIRS=16 GAINPAIRS=32 OUT=/tmp/c3o WORK=/tmp/c3w``.
"""

import json
import logging
import os
import time
from dataclasses import replace
from pathlib import Path

from engine.data.synth.cache import write_cache
from engine.data.synth.sampler import SynthConfig, SynthSampler
from engine.data.synth.subject import Split
from engine.eval.metrics import EvalConfig, evaluate_redirector
from engine.eval.warp_eval import WarpEvalConfig, evaluate_warp
from engine.train.calibrate import GAIN_CONFIG, CalibrationConfig, calibrate_checkpoint, calibrate_gain_checkpoint
from engine.train.checkpoint import load_payload, load_redirector, ship_checkpoint
from engine.train.config import TrainConfig, to_json_dict
from engine.train.estimator import (
    EstimatorConfig,
    EstimatorTrainConfig,
    Judge,
    MirrorAveraged,
    load_estimator,
    save_estimator,
)
from engine.train.recipe import _estimator_job, _fast_cuda, _redirector_job, _run_parallel

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    env = os.environ.get
    dev = env("DEV", "cuda")
    npairs, seconds, pairs_eval = int(env("NPAIRS", "65536")), float(env("SECONDS", "330")), int(env("EVAL", "1024"))
    batch, bbatch = int(env("BATCH", "64")), int(env("BBATCH", "128"))
    blr, precision = float(env("BLR", "1e-4")), env("PRECISION", "fp32")
    out, work, shipped = Path(env("OUT", "/tmp/c3out")), Path(env("WORK", "/tmp/c3")), Path("engine/weights")
    out.mkdir(exist_ok=True, parents=True)
    work.mkdir(exist_ok=True, parents=True)
    _fast_cuda()
    t0 = time.monotonic()
    summary: dict = {"npairs": npairs, "seconds": seconds, "judge_lr": blr, "precision": precision}
    cache = work / "pairs.h5"
    render_batch = min(2048, npairs)
    write_cache(
        SynthSampler(SynthConfig(), Split.TRAIN, seed=31337, batch_size=render_batch, device=dev),
        cache,
        npairs,
        progress=False,
    )
    summary["cache_s"] = time.monotonic() - t0
    init = load_payload(shipped / "redirector.pt")
    cfg = replace(
        TrainConfig.from_dict(init["config"]),
        steps=10**7,
        max_seconds=seconds,
        checkpoint_every=10**7,
        batch_size=batch,
        log_dir=str(work / "redirector"),
        cache=str(cache),
        estimator_checkpoint=str(shipped / "estimator_a.pt"),
        judge_checkpoint=str(shipped / "estimator_b.pt"),  # the new B is still training when this run ends
        init_weights=str(shipped / "redirector.pt"),
        lr=3e-4,
        device=dev,
        seed=4,
        precision=precision,
    )
    # session 15: the warp alone must carry the move (the corrector pastes it without the residual); a wider flow
    # bound makes room for it (the trainer scales the shipped flow head to the new bound)
    cfg = replace(
        cfg,
        weights=replace(
            cfg.weights,
            warp=float(env("WARP", "200")),
            pupil=float(env("PUPIL", "5")),
            fold=float(env("FOLD", "300")),
        ),
        model=replace(cfg.model, max_flow_px=float(env("FLOWPX", "16"))),
    )
    summary["warp_weight"], summary["max_flow_px"] = cfg.weights.warp, cfg.model.max_flow_px
    summary["pupil_weight"], summary["fold_weight"] = cfg.weights.pupil, cfg.weights.fold
    bcfg = EstimatorTrainConfig(
        estimator=EstimatorConfig(arch="b", width=24),
        steps=10**7,
        batch_size=bbatch,
        lr=blr,
        lr_schedule="cosine" if env("BSCHEDULE", "cosine") == "cosine" else "step",
        lr_decay=0.5,
        lr_decay_steps=int(env("BDECAY", "700")),
        seed=2,
        device=dev,
        out=str(work / "estimator_b.pt"),
        checkpoint_every=10**7,
        max_seconds=seconds,
        cache=str(cache),
        init_weights=str(shipped / "estimator_b.pt"),
        precision=precision,
    )
    res = _run_parallel([(_estimator_job, (bcfg, 4)), (_redirector_job, (cfg, pairs_eval, 4))])
    summary["judge_b"] = res[0]
    summary["redirector"] = {k: v for k, v in res[1].items() if k != "history"}
    summary["redirector"]["from_step"] = init["step"]
    summary["train_s"] = time.monotonic() - t0
    new_path = ship_checkpoint(work / "redirector" / "last.pt", out / "redirector.pt")
    if env("CALIBRATE", "1") == "1":
        cal = CalibrationConfig(pairs=int(env("CALPAIRS", "8192")))
        summary["calibration"] = {
            "new_b": to_json_dict(calibrate_checkpoint(bcfg.out, config=cal, device=dev, progress=False)),
            "new": to_json_dict(calibrate_checkpoint(new_path, config=cal, device=dev, progress=False)),
        }
        gain_cal = replace(GAIN_CONFIG, pairs=int(env("GAINPAIRS", "1024")))
        critic = shipped / "estimator_a.pt"
        gain = calibrate_gain_checkpoint(new_path, critic, config=gain_cal, device=dev, progress=False)
        summary["calibration"]["new_gain"] = to_json_dict(gain)
    judges: dict[str, Judge] = {}
    for judge_name, judge_path in (("shipped_b", shipped / "estimator_b.pt"), ("new_b", Path(bcfg.out))):
        judges[judge_name] = load_estimator(judge_path, dev)
        judges[f"{judge_name}_mirror"] = MirrorAveraged(judges[judge_name])
    models = {"shipped": shipped / "redirector.pt", "new": new_path}
    table = {}
    for model_name, path in models.items():
        model, config, _ = load_redirector(path, dev)
        for judge_name, judge in judges.items():
            for mirror in (False, True):  # the single pass, and the mirror ensemble (session 10)
                metrics = evaluate_redirector(model, judge, config.synth, EvalConfig(pairs=pairs_eval, mirror=mirror))
                table[f"{model_name}{' mirrored' if mirror else ''} by {judge_name}"] = metrics.to_dict()
    summary["evaluation"] = table
    # what the corrector pastes: the warp alone against the full output, on same-head pairs (session 15)
    warp_table = {}
    for model_name, path in models.items():
        model, config, _ = load_redirector(path, dev)
        for judge_name in ("shipped_b_mirror", "new_b_mirror"):
            warp_cfg = WarpEvalConfig(pairs=pairs_eval, batch_size=min(32, pairs_eval))
            warp_table[f"{model_name} by {judge_name}"] = evaluate_warp(
                model, judges[judge_name], config.synth, warp_cfg, progress=False
            )
    summary["warp_evaluation"] = warp_table
    save_estimator(load_estimator(bcfg.out), out / "estimator_b.pt")  # weights only, as shipped
    summary["total_s"] = time.monotonic() - t0
    (out / "summary3.json").write_text(json.dumps(summary, indent=2, default=str))
    print(json.dumps(summary, indent=1, default=str))
