"""Device call 2: judge B (CoordConv) and the redirector continued from call 1, in parallel; then ship."""
import json, logging, os, time
from dataclasses import replace
from pathlib import Path

from engine.data.synth.cache import write_cache
from engine.data.synth.sampler import SynthConfig, SynthSampler
from engine.data.synth.subject import Split
from engine.eval.metrics import EvalConfig, evaluate_redirector
from engine.model.export import export_onnx, verify_onnx
from engine.train.checkpoint import load_payload, load_redirector, ship_checkpoint
from engine.train.config import TrainConfig
from engine.train.estimator import EstimatorConfig, EstimatorTrainConfig, load_estimator, save_estimator
from engine.train.recipe import _estimator_job, _fast_cuda, _redirector_job, _run_parallel

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    env = os.environ.get
    dev, npairs, rsec, bsec, ev = env("DEV", "cuda"), int(env("NPAIRS", "24576")), float(env("RSEC", "180")), float(env("BSEC", "110")), int(env("EVAL", "1024"))
    out, work, here = Path(env("OUT", "/tmp/c2out")), Path("/tmp/c2"), Path("runs/call2")
    out.mkdir(exist_ok=True, parents=True); work.mkdir(exist_ok=True)
    _fast_cuda()
    t0 = time.monotonic()
    summary = {}
    cache = work / "pairs.h5"
    write_cache(SynthSampler(SynthConfig(), Split.TRAIN, seed=777, batch_size=512, device=dev), cache, npairs, progress=False)
    summary["cache_s"] = time.monotonic() - t0
    init = load_payload(here / "redirector.pt")
    cfg = replace(TrainConfig.from_dict(init["config"]), steps=10**7, max_seconds=rsec, checkpoint_every=10**7,
                  log_dir=str(work / "final"), cache=str(cache), estimator_checkpoint=str(here / "estimator_a.pt"),
                  judge_checkpoint=str(work / "estimator_b.pt"), init_weights=str(here / "redirector.pt"),
                  lr=5e-4, device=dev, seed=3)
    bcfg = EstimatorTrainConfig(estimator=EstimatorConfig(arch="b", width=24), steps=10**7, batch_size=128,
                                lr_decay_steps=10**7, seed=1, device=dev, out=str(work / "estimator_b.pt"),
                                checkpoint_every=10**7, max_seconds=bsec, cache=str(cache))
    res = _run_parallel([(_estimator_job, (bcfg, 4)), (_redirector_job, (cfg, ev, 4))])
    summary["b"] = res[0]
    summary["final"] = res[1]
    summary["final"]["from_step"] = init["step"]
    judge = load_estimator(work / "estimator_b.pt", dev)
    m0, c0, _ = load_redirector(here / "redirector.pt", dev)
    summary["call1_model_new_judge"] = evaluate_redirector(m0, judge, c0.synth, EvalConfig(pairs=ev)).to_dict()
    save_estimator(load_estimator(work / "estimator_b.pt"), out / "estimator_b.pt")
    shipped = ship_checkpoint(work / "final" / "last.pt", out / "redirector.pt")
    m, _, _ = load_redirector(shipped)
    onnx = export_onnx(m, out / "redirector.onnx", c0.synth.geometry)
    summary["onnx_diff"] = verify_onnx(m, onnx, c0.synth.geometry)
    summary["total_s"] = time.monotonic() - t0
    (out / "summary2.json").write_text(json.dumps(summary, indent=2, default=str))
    print(json.dumps({k: v for k, v in summary.items() if k != "final"}, indent=1, default=str))
    print(json.dumps(summary["final"]["metrics"], indent=1))
