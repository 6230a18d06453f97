"""One-off (session 9): `mirada eval`'s metrics on 512 validation pairs for each checkpoint given, by the shipped judge.

    PYTHONPATH=. python docs/model/session9/val_eval.py CHECKPOINT [CHECKPOINT ...]

Session 9 ran it on the session-8 model (`git show 8d03e06:engine/weights/redirector.pt`) and on copies with the
move gain calibrated (gaze and head; gaze only).
"""
import sys, json, torch
from engine.data.synth import Split
from engine.eval.metrics import EvalConfig, evaluate_redirector
from engine.train.checkpoint import load_redirector
from engine.train.estimator import load_estimator
judge = load_estimator("engine/weights/estimator_b.pt")
for path in sys.argv[1:]:
    model, cfg, _ = load_redirector(path)
    m = evaluate_redirector(model, judge, cfg.synth, EvalConfig(pairs=512, split=Split.VAL))
    print(path, json.dumps({k: round(v, 3) for k, v in m.to_dict().items()}))
