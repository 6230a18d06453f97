// The demo page: camera in, corrected video out, with the controls of a session's settings.
// The client lives with the browser extension, which ships it too; it defines globalThis.MiradaClient.
import "./extension/mirada-client.js";
import { LivePlot } from "./plot.js";

const { MiradaSession, readiness } = globalThis.MiradaClient;

const PAD_RANGE_DEG = 20; // the pad spans ±20° (the network handles up to ±30°; beyond 20° looks unnatural)
const MODE_HINTS = {
  correct: "Redirects your gaze toward the target.",
  estimate: "Measures your gaze and head pose; the video is untouched.",
  off: "Passes the video through untouched.",
};

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"),
  backend: $("backend"),
  start: $("start"),
  toggle: $("toggle"),
  message: $("message"),
  original: $("original"),
  corrected: $("corrected"),
  stage: $("stage"),
  wipe: $("wipe"),
  placeholder: $("placeholder"),
  strength: $("strength"),
  strengthValue: $("strength-value"),
  pad: $("pad"),
  padTarget: $("pad-target"),
  padEstimate: $("pad-estimate"),
  targetValue: $("target-value"),
  natural: $("natural"),
  apiKey: $("api-key"),
  fps: $("fps"),
  latency: $("latency"),
  applied: $("applied"),
  modeHint: $("mode-hint"),
};

// What the page wants; sent at start and on every change.
const wanted = { mode: "correct", strength: 1, target_pitch_deg: 0, target_yaw_deg: 0, natural_look_away: false };
let correctionMode = "correct"; // the mode the toggle turns back on
let session = null;
let camera = null;
const plot = new LivePlot($("plot"));

// State for people and for automated tests of this page.
window.mirada = { state: "idle", telemetry: 0, last: null, settings: null, sessionId: null };

function setState(state, text = state) {
  window.mirada.state = state;
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}

function say(text, error = false) {
  ui.message.textContent = text;
  ui.message.classList.toggle("error", error);
}

async function push(patch) {
  Object.assign(wanted, patch);
  if (!session) return;
  try {
    await session.update(patch);
  } catch (err) {
    say(err.message, true);
  }
}

// --- camera and session ---------------------------------------------------------------------------------

async function start() {
  ui.start.disabled = true;
  setState("connecting");
  say("");
  try {
    camera = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } },
      audio: false,
    });
    ui.original.srcObject = camera;
    session = new MiradaSession({ apiKey: ui.apiKey.value.trim() });
    session.addEventListener("telemetry", (event) => onTelemetry(event.detail));
    session.addEventListener("settings", (event) => onSettings(event.detail.settings));
    session.addEventListener("error", (event) => say(event.detail.error, true));
    session.addEventListener("state", (event) => {
      if (event.detail === "connected") setState("live");
      if (event.detail === "failed" || event.detail === "disconnected") setState("error", event.detail);
    });
    // window.miradaInitial: extra settings for automation (tests, kiosks), e.g. look-away thresholds.
    const initial = { ...wanted, ...(window.miradaInitial || {}) };
    const corrected = await session.start(camera.getVideoTracks()[0], { settings: initial });
    ui.corrected.srcObject = corrected;
    window.mirada.sessionId = session.id;
    onSettings(session.settings);
    ui.placeholder.hidden = true;
    ui.start.textContent = "Stop";
    ui.start.classList.add("stop");
  } catch (err) {
    setState("error");
    if (err.status === 401) {
      say("This service needs an API key: enter it under Connection, then start again.", true);
      ui.apiKey.closest("details").open = true;
      ui.apiKey.focus();
    } else if (err.status === 503) {
      say("The service is full right now; try again in a moment.", true);
    } else if (err.name === "NotAllowedError") {
      say("Camera permission was denied.", true);
    } else {
      say(err.message || String(err), true);
    }
    await stop(false);
  } finally {
    ui.start.disabled = false;
  }
}

async function stop(resetState = true) {
  if (session) await session.stop();
  session = null;
  if (camera) camera.getTracks().forEach((track) => track.stop());
  camera = null;
  ui.original.srcObject = null;
  ui.corrected.srcObject = null;
  ui.placeholder.hidden = false;
  ui.start.textContent = "Start camera";
  ui.start.classList.remove("stop");
  window.mirada.sessionId = null;
  if (resetState) setState("idle");
}

// --- what the service tells us --------------------------------------------------------------------------

function onSettings(settings) {
  if (!settings) return;
  window.mirada.settings = settings;
  Object.assign(wanted, {
    mode: settings.mode,
    strength: settings.strength,
    target_pitch_deg: settings.target_pitch_deg,
    target_yaw_deg: settings.target_yaw_deg,
    natural_look_away: settings.natural_look_away,
  });
  if (settings.mode !== "off") correctionMode = settings.mode;
  renderControls();
}

let lastStats = 0;
function onTelemetry(message) {
  window.mirada.telemetry += 1;
  window.mirada.last = message;
  const face = (message.faces || [])[0];
  plot.push({
    pitch: face && face.gaze_deg ? face.gaze_deg[0] : null,
    yaw: face && face.gaze_deg ? face.gaze_deg[1] : null,
    latency: message.latency_ms,
    target: face ? face.target_deg : [wanted.target_pitch_deg, wanted.target_yaw_deg],
  });
  if (face && face.gaze_deg) {
    ui.padEstimate.hidden = false;
    placeDot(ui.padEstimate, face.gaze_deg[0], face.gaze_deg[1]);
  } else {
    ui.padEstimate.hidden = true;
  }
  const now = performance.now();
  if (now - lastStats > 250) {
    lastStats = now;
    ui.fps.textContent = message.fps.toFixed(0);
    ui.latency.textContent = message.latency_ms.toFixed(0);
    ui.applied.textContent = face ? `${Math.round(face.strength * 100)}%` : "no face";
    if (message.backend) ui.backend.textContent = message.backend;
  }
}

// --- controls --------------------------------------------------------------------------------------------

function renderControls() {
  document.querySelectorAll("[data-mode]").forEach((button) => {
    const on = button.dataset.mode === wanted.mode;
    button.classList.toggle("on", on);
    button.setAttribute("aria-checked", String(on));
  });
  ui.modeHint.textContent = MODE_HINTS[wanted.mode];
  ui.toggle.checked = wanted.mode !== "off";
  ui.strength.value = String(Math.round(wanted.strength * 100));
  ui.strengthValue.textContent = `${ui.strength.value}%`;
  ui.natural.checked = wanted.natural_look_away;
  placeDot(ui.padTarget, wanted.target_pitch_deg, wanted.target_yaw_deg);
  ui.targetValue.textContent = `${fmt(wanted.target_pitch_deg)} pitch, ${fmt(wanted.target_yaw_deg)} yaw`;
}

const fmt = (deg) => `${deg > 0 ? "+" : ""}${deg.toFixed(0)}°`;

function placeDot(dot, pitch, yaw) {
  // Positive yaw looks toward the image's left, positive pitch up (the corrector's convention).
  const clamp = (v) => Math.max(-PAD_RANGE_DEG, Math.min(PAD_RANGE_DEG, v));
  dot.style.left = `${50 - (clamp(yaw) / PAD_RANGE_DEG) * 50}%`;
  dot.style.top = `${50 - (clamp(pitch) / PAD_RANGE_DEG) * 50}%`;
}

function padToTarget(event) {
  const box = ui.pad.getBoundingClientRect();
  const x = Math.max(0, Math.min(1, (event.clientX - box.left) / box.width));
  const y = Math.max(0, Math.min(1, (event.clientY - box.top) / box.height));
  const round = (v) => Math.round(v * 2) / 2;
  return { target_yaw_deg: round((0.5 - x) * 2 * PAD_RANGE_DEG), target_pitch_deg: round((0.5 - y) * 2 * PAD_RANGE_DEG) };
}

let padTimer = null;
function sendTargetSoon() {
  // Dragging fires many events: send at most ~20 updates a second.
  if (padTimer) return;
  padTimer = setTimeout(() => {
    padTimer = null;
    push({ target_pitch_deg: wanted.target_pitch_deg, target_yaw_deg: wanted.target_yaw_deg });
  }, 50);
}

function setTarget(target) {
  Object.assign(wanted, target);
  renderControls();
  sendTargetSoon();
}

ui.pad.addEventListener("pointerdown", (event) => {
  ui.pad.setPointerCapture(event.pointerId);
  setTarget(padToTarget(event));
});
ui.pad.addEventListener("pointermove", (event) => {
  if (ui.pad.hasPointerCapture(event.pointerId)) setTarget(padToTarget(event));
});
ui.pad.addEventListener("dblclick", () => setTarget({ target_pitch_deg: 0, target_yaw_deg: 0 }));
ui.pad.addEventListener("keydown", (event) => {
  const step = event.shiftKey ? 5 : 1;
  const moves = { ArrowUp: [step, 0], ArrowDown: [-step, 0], ArrowLeft: [0, step], ArrowRight: [0, -step] };
  const move = moves[event.key];
  if (!move) return;
  event.preventDefault();
  const clamp = (v) => Math.max(-PAD_RANGE_DEG, Math.min(PAD_RANGE_DEG, v));
  setTarget({
    target_pitch_deg: clamp(wanted.target_pitch_deg + move[0]),
    target_yaw_deg: clamp(wanted.target_yaw_deg + move[1]),
  });
});

document.querySelectorAll("[data-mode]").forEach((button) => {
  button.addEventListener("click", () => {
    if (button.dataset.mode !== "off") correctionMode = button.dataset.mode;
    wanted.mode = button.dataset.mode;
    renderControls();
    push({ mode: wanted.mode });
  });
});

ui.toggle.addEventListener("change", () => {
  wanted.mode = ui.toggle.checked ? correctionMode : "off";
  renderControls();
  push({ mode: wanted.mode });
});

ui.strength.addEventListener("input", () => {
  wanted.strength = Number(ui.strength.value) / 100;
  ui.strengthValue.textContent = `${ui.strength.value}%`;
});
ui.strength.addEventListener("change", () => push({ strength: wanted.strength }));

ui.natural.addEventListener("change", () => push({ natural_look_away: ui.natural.checked }));

document.querySelectorAll("[data-view]").forEach((button) => {
  button.addEventListener("click", () => {
    ui.stage.dataset.view = button.dataset.view;
    document.querySelectorAll("[data-view]").forEach((b) => {
      b.classList.toggle("on", b === button);
      b.setAttribute("aria-checked", String(b === button));
    });
  });
});
ui.wipe.addEventListener("input", () => ui.stage.style.setProperty("--wipe", `${ui.wipe.value}%`));

ui.start.addEventListener("click", () => (session ? stop() : start()));

ui.apiKey.value = localStorage.getItem("mirada.apiKey") || "";
ui.apiKey.addEventListener("change", () => localStorage.setItem("mirada.apiKey", ui.apiKey.value.trim()));

window.addEventListener("pagehide", () => {
  if (session) session.stop();
});

renderControls();
readiness()
  .then((ready) => {
    ui.backend.textContent = ready.backend ? `${ready.backend}${ready.passthrough ? " · no weights (pass-through)" : ""}` : "";
    if (ready.degraded) say(`Service degraded: ${ready.last_error}`, true);
  })
  .catch(() => say("Cannot reach the Mirada service.", true));
