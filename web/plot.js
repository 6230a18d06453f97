// A scrolling line plot on a canvas: estimated gaze (pitch, yaw; degrees) on top, latency (ms) below.

const SECONDS = 10;

export class LivePlot {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.samples = []; // {t, pitch, yaw, latency, target: [pitch, yaw]}
    this.frame = null;
  }

  push(sample) {
    this.samples.push({ t: performance.now() / 1000, ...sample });
    const cutoff = performance.now() / 1000 - SECONDS - 1;
    while (this.samples.length && this.samples[0].t < cutoff) this.samples.shift();
    if (this.frame === null) this.frame = requestAnimationFrame(() => this.draw());
  }

  draw() {
    this.frame = null;
    const { canvas, ctx } = this;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || canvas.width;
    const height = Math.round(Math.min(width * 0.47, 260));
    if (canvas.width !== Math.round(width * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const gazeBox = { x: 34, y: 8, w: width - 42, h: height * 0.58 };
    const latBox = { x: 34, y: gazeBox.y + gazeBox.h + 14, w: width - 42, h: height - gazeBox.h - 30 };
    const now = performance.now() / 1000;
    const xOf = (t) => gazeBox.x + ((t - (now - SECONDS)) / SECONDS) * gazeBox.w;

    this.#frameBox(gazeBox, [-30, 30], "°");
    const latencies = this.samples.map((s) => s.latency).filter((v) => v != null);
    const latMax = Math.max(40, ...latencies) * 1.1;
    this.#frameBox(latBox, [0, latMax], "ms");

    const yGaze = (v) => gazeBox.y + gazeBox.h / 2 - (v / 30) * (gazeBox.h / 2);
    const yLat = (v) => latBox.y + latBox.h - (v / latMax) * latBox.h;
    const last = this.samples[this.samples.length - 1];
    if (last && last.target) {
      ctx.setLineDash([4, 4]);
      this.#hline(gazeBox, yGaze(last.target[0]), "rgba(124,156,255,0.55)");
      this.#hline(gazeBox, yGaze(last.target[1]), "rgba(79,209,197,0.55)");
      ctx.setLineDash([]);
    }
    this.#series((s) => s.pitch, xOf, yGaze, "#7c9cff");
    this.#series((s) => s.yaw, xOf, yGaze, "#4fd1c5");
    this.#series((s) => s.latency, xOf, yLat, "#f5a524");
  }

  #frameBox(box, [lo, hi], unit) {
    const { ctx } = this;
    ctx.strokeStyle = "rgba(255,255,255,0.08)";
    ctx.lineWidth = 1;
    ctx.strokeRect(box.x + 0.5, box.y + 0.5, box.w - 1, box.h - 1);
    ctx.fillStyle = "#8b98a8";
    ctx.font = "11px system-ui, sans-serif";
    ctx.textAlign = "right";
    ctx.fillText(`${Math.round(hi)}${unit}`, box.x - 4, box.y + 10);
    ctx.fillText(`${Math.round(lo)}${unit}`, box.x - 4, box.y + box.h);
  }

  #hline(box, y, color) {
    const { ctx } = this;
    ctx.strokeStyle = color;
    ctx.beginPath();
    ctx.moveTo(box.x, y);
    ctx.lineTo(box.x + box.w, y);
    ctx.stroke();
  }

  #series(value, xOf, yOf, color) {
    const { ctx } = this;
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    let drawing = false;
    for (const sample of this.samples) {
      const v = value(sample);
      if (v == null) {
        drawing = false;
        continue;
      }
      const x = xOf(sample.t);
      const y = yOf(v);
      if (drawing) ctx.lineTo(x, y);
      else ctx.moveTo(x, y);
      drawing = true;
    }
    ctx.stroke();
  }
}
