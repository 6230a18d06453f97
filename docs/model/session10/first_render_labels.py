"""One-off (session 10): does the first render of a fresh process differ from later ones? See first_render.log."""
import sys

from tests.train.test_calibrate import SMALL, _bias_deg, _encoder_labels, _model

model = _model()
a = _bias_deg(_encoder_labels(model), SMALL); b = _bias_deg(_encoder_labels(model), SMALL); c = _bias_deg(_encoder_labels(model), SMALL)
print(sys.argv[1], f"ab={float((a-b).abs().max()):.3g} bc={float((b-c).abs().max()):.3g}", flush=True)
