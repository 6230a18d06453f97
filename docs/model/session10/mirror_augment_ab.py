"""One-off (session 10): does mirror augmentation help an estimator learn? Estimator A at width 8, trained from
scratch on one 4,096-pair training cache for 150 s (batch 16 pairs, cosine schedule), without and with
``mirror_augment``, seeds 0 and 1 each, alternating; each scored on the same 512 validation pairs (1,024 strips).

    PYTHONPATH=. python docs/model/session10/mirror_augment_ab.py
"""
import json
import time
from pathlib import Path

from engine.data.synth import Split, SynthConfig, SynthSampler
from engine.data.synth.cache import write_cache
from engine.train.estimator import EstimatorConfig, EstimatorTrainConfig, estimator_error, train_estimator

work = Path("/tmp/mirror_ab")
work.mkdir(exist_ok=True)
synth = SynthConfig()
cache = work / "pairs.h5"
if not cache.is_file():
    t0 = time.time()
    write_cache(SynthSampler(synth, Split.TRAIN, 11, 256, "cpu", compiled=True), cache, 4096, progress=False)
    print(f"cache of 4,096 pairs in {time.time() - t0:.0f} s", flush=True)
val = SynthSampler(synth, Split.VAL, 0, 64, "cpu")
results = []
for seed in (0, 1):
    for augment in (False, True):
        config = EstimatorTrainConfig(
            estimator=EstimatorConfig(arch="a", width=8),
            steps=100_000,
            batch_size=16,
            lr_schedule="cosine",
            max_seconds=150.0,
            seed=seed,
            device="cpu",
            out=str(work / f"a_{seed}_{augment}.pt"),
            cache=str(cache),
            val_batches=0,
            mirror_augment=augment,
        )
        result = train_estimator(config, progress=False)
        gaze, head = estimator_error(result.model, val, 8)
        row = {"seed": seed, "mirror_augment": augment, "steps": len(result.losses), "val_gaze_deg": gaze, "val_head_deg": head}
        results.append(row)
        print(json.dumps(row), flush=True)
for augment in (False, True):
    rows = [r for r in results if r["mirror_augment"] == augment]
    print(
        f"mirror_augment={augment}: gaze {sum(r['val_gaze_deg'] for r in rows) / 2:.3f}, "
        f"head {sum(r['val_head_deg'] for r in rows) / 2:.3f} (mean of seeds 0, 1)"
    )
