// A plain WebRTC page, as a call app would be: it asks for the camera, shows it, and calls itself over a pair of
// RTCPeerConnections. It knows nothing of Mirada; with the extension on for this site, its camera is corrected.
// `?start` starts at once (`?start&call=0` without the call), `?camera=ID` asks for that camera (as an app that
// remembers your choice would), `?audio=1` for the microphone too. window.testPage is for automated tests.
"use strict";

const $ = (id) => document.getElementById(id);
const query = new URLSearchParams(location.search);
const state = { stream: null, peers: [], frames: { local: 0, remote: 0 }, label: "", settings: null, audio: null, error: "", devices: [] };
window.testPage = state;

function countFrames(video, key) {
  const step = () => {
    state.frames[key] += 1;
    video.requestVideoFrameCallback(step);
  };
  video.requestVideoFrameCallback(step);
}
countFrames($("local"), "local");
countFrames($("remote"), "remote");

async function listCameras() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  state.devices = devices.map((d) => ({ kind: d.kind, deviceId: d.deviceId, label: d.label }));
  const select = $("camera");
  const chosen = select.value;
  select.replaceChildren(new Option("default", ""));
  for (const d of devices.filter((d) => d.kind === "videoinput")) select.add(new Option(d.label || d.deviceId, d.deviceId));
  select.value = chosen;
}

async function call(track, stream) {
  const a = new RTCPeerConnection();
  const b = new RTCPeerConnection();
  state.peers = [a, b];
  a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
  b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
  b.ontrack = (e) => ($("remote").srcObject = e.streams[0] || new MediaStream([e.track]));
  a.addTrack(track, stream);
  await a.setLocalDescription(await a.createOffer());
  await b.setRemoteDescription(a.localDescription);
  await b.setLocalDescription(await b.createAnswer());
  await a.setRemoteDescription(b.localDescription);
}

async function start() {
  $("start").disabled = true;
  $("error").textContent = state.error = "";
  try {
    const deviceId = $("camera").value || query.get("camera") || "";
    const video = { width: { ideal: 640 }, height: { ideal: 480 }, ...(deviceId ? { deviceId: { exact: deviceId } } : {}) };
    const stream = await navigator.mediaDevices.getUserMedia({ video, audio: query.get("audio") === "1" });
    state.stream = stream;
    const [track] = stream.getVideoTracks();
    state.label = track.label;
    state.settings = track.getSettings();
    state.audio = stream.getAudioTracks().map((t) => ({ label: t.label, readyState: t.readyState }));
    $("local").srcObject = stream;
    $("info").textContent = `track: ${track.label}`;
    $("remote-pane").hidden = !$("call").checked;
    if ($("call").checked) await call(track, stream);
    $("stop").disabled = false;
    await listCameras();
    if (deviceId) $("camera").value = deviceId;
  } catch (err) {
    $("error").textContent = state.error = `${err.name}: ${err.message}`;
    $("start").disabled = false;
  }
}

function stop() {
  for (const pc of state.peers) pc.close();
  state.peers = [];
  if (state.stream) state.stream.getTracks().forEach((track) => track.stop());
  state.stream = null;
  $("local").srcObject = $("remote").srcObject = null;
  $("stop").disabled = true;
  $("start").disabled = false;
}

/** The newest frame of a video ("local" or "remote") as a PNG data URL. */
state.grab = (which) => {
  const video = $(which);
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  return canvas.toDataURL("image/png");
};
state.start = start;
state.stop = stop;

$("start").addEventListener("click", start);
$("stop").addEventListener("click", stop);
if (query.get("call") === "0") $("call").checked = false;
listCameras().then(() => query.has("start") && start());
