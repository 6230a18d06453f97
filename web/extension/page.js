// Runs in the page's own world (MAIN) at document_start, before any of the page's scripts, on the sites on
// Mirada's list. It wraps navigator.mediaDevices.getUserMedia and enumerateDevices: a page that asks for video gets
// a track that shows the camera as corrected by the local Mirada service, with the audio untouched.
//
// The page's video track is a MediaStreamTrackGenerator that this script feeds, not the WebRTC track itself, so
// that Mirada can come and go under a call without the page noticing: frames come from the service while it
// sends them, and straight from the camera whenever it does not (unreachable, stopped, switched off in the
// popup). The camera never stops showing (fail open), and the toolbar icon says which one the page gets.
//
// No chrome.* APIs here: REST calls, settings and status go through bridge.js (see there).
(() => {
  "use strict";

  const client = globalThis.MiradaClient; // defined by mirada-client.js, which runs just before this file
  delete globalThis.MiradaClient; // the page has no business with it

  const MIRADA_DEVICE_ID = "mirada-eye-contact";
  const MIRADA_GROUP_ID = "mirada";
  const MIRADA_LABEL = "Mirada (eye contact)";
  const HELLO = "mirada:hello:1";
  const READY = "mirada:bridge-ready:1";
  const CONFIG_WAIT_MS = 1500; // how long getUserMedia waits to hear from the extension (then: plain camera)
  const REQUEST_TIMEOUT_MS = 15000;
  const CONNECT_TIMEOUT_MS = 15000;
  const STALE_MS = 600; // the camera's own frames fill in once the service has sent nothing for this long
  const STALL_MS = 4000; // ... and after this long the session is given up and reopened
  const RETRY_MS = [2000, 4000, 8000, 16000, 30000]; // reconnection back-off while the service is unreachable
  const TICK_MS = 500;

  // The page may replace any of these later (call apps wrap media APIs); Mirada keeps the originals.
  const native = {
    getUserMedia: MediaDevices.prototype.getUserMedia,
    enumerateDevices: MediaDevices.prototype.enumerateDevices,
    stop: MediaStreamTrack.prototype.stop,
    clone: MediaStreamTrack.prototype.clone,
    enabled: Object.getOwnPropertyDescriptor(MediaStreamTrack.prototype, "enabled"),
    readyState: Object.getOwnPropertyDescriptor(MediaStreamTrack.prototype, "readyState").get,
    MediaStream: globalThis.MediaStream,
    Generator: globalThis.MediaStreamTrackGenerator,
    Processor: globalThis.MediaStreamTrackProcessor,
    VideoFrame: globalThis.VideoFrame,
    Response: globalThis.Response,
    MessageChannel: globalThis.MessageChannel,
  };

  if (!client || !navigator.mediaDevices || !native.Generator || !native.Processor || !native.VideoFrame) {
    // No camera API (not a secure context) or no breakout-box streams (a very old Chrome): leave the page alone.
    return;
  }

  // --- the bridge to the extension ----------------------------------------------------------------------------

  let port = null;
  let config = null; // {active, settings} from bridge.js
  let configWaiters = [];
  const pending = new Map();
  let nextRequest = 1;

  function hello() {
    const channel = new native.MessageChannel();
    channel.port1.onmessage = (event) => {
      port = channel.port1; // the port bridge.js took (if hello went out twice, the other one stays silent)
      onBridgeMessage(event.data || {});
    };
    window.postMessage({ mirada: HELLO }, "*", [channel.port2]);
  }

  window.addEventListener(
    "message",
    (event) => {
      if (event.source !== window || !event.data || event.data.mirada !== READY) return;
      event.stopImmediatePropagation(); // ours, not the page's
      if (!port) hello(); // bridge.js started after our hello went by
    },
    true,
  );
  hello();

  function onBridgeMessage(message) {
    if (message.type === "config") {
      const wasActive = config && config.active;
      config = { active: Boolean(message.active), settings: message.settings || {} };
      // Mirada's camera entry came or went: apps refresh their camera menus on this event.
      if (wasActive != null && wasActive !== config.active) navigator.mediaDevices.dispatchEvent(new Event("devicechange"));
      configWaiters.splice(0).forEach((resolve) => resolve(config));
      for (const camera of cameras) camera.configure();
    } else if (message.type === "response") {
      const resolve = pending.get(message.id);
      pending.delete(message.id);
      if (resolve) resolve(message);
    }
  }

  function currentConfig() {
    if (config) return Promise.resolve(config);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(config || { active: false, settings: {} }), CONFIG_WAIT_MS);
      configWaiters.push((value) => {
        clearTimeout(timer);
        resolve(value);
      });
    });
  }

  function post(message) {
    if (port) port.postMessage(message);
  }

  function request(message) {
    return new Promise((resolve, reject) => {
      if (!port) {
        reject(new TypeError("the Mirada extension is not connected to this page"));
        return;
      }
      const id = nextRequest++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new TypeError("no answer from the Mirada extension"));
      }, REQUEST_TIMEOUT_MS);
      pending.set(id, (answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
      port.postMessage({ ...message, id });
    });
  }

  /** fetch() for MiradaSession: the service worker makes the call, adding the service's address and API key. */
  async function relayFetch(path, init = {}) {
    const headers = init.headers || {};
    const answer = await request({
      type: "fetch",
      method: init.method || "GET",
      path: String(path),
      body: init.body,
      token: headers["X-Session-Token"],
    });
    if (answer.error) throw new TypeError(answer.error);
    const empty = answer.status === 204 || answer.status === 205 || answer.status === 304;
    return new native.Response(empty ? null : answer.body, { status: answer.status, statusText: answer.statusText });
  }

  // --- constraints ----------------------------------------------------------------------------------------------

  function namesMirada(deviceId) {
    if (deviceId == null) return false;
    if (typeof deviceId === "string") return deviceId === MIRADA_DEVICE_ID;
    if (Array.isArray(deviceId)) return deviceId.includes(MIRADA_DEVICE_ID);
    if (typeof deviceId === "object") return namesMirada(deviceId.exact) || namesMirada(deviceId.ideal);
    return false;
  }

  /** The page's video constraints with Mirada's device id taken out (the default camera stands behind it). */
  function withoutMirada(video) {
    if (!video || typeof video !== "object" || !namesMirada(video.deviceId)) return { video, mirada: false };
    const { deviceId: _, ...rest } = video;
    return { video: Object.keys(rest).length ? rest : true, mirada: true };
  }

  function describe(err) {
    if (err && err.status === 401) return "the service needs an API key (set it in Mirada's popup)";
    if (err && err.status === 503) return "the service is at its session limit";
    return (err && err.message) || String(err);
  }

  // --- one corrected camera -----------------------------------------------------------------------------------

  const cameras = new Set();

  class CorrectedCamera {
    /**
     * @param {MediaStreamTrack} camera the real camera's track (this object owns it from now on)
     * @param {boolean} mirada whether the page asked for Mirada's device by its id
     */
    constructor(camera, mirada) {
      this.camera = camera;
      this.mirada = mirada;
      this.key = Math.random().toString(36).slice(2, 10);
      this.output = new native.Generator({ kind: "video" });
      this.writer = this.output.writable.getWriter();
      this.tracks = new Set(); // the page's live tracks: the output and its clones
      this.session = null;
      this.connecting = false;
      this.remoteReader = null;
      this.cameraReader = null;
      this.lastRemoteAt = 0;
      this.sessionSince = 0;
      this.timestamp = 0;
      this.retries = 0;
      this.retryAt = 0;
      this.ticks = 0;
      this.state = "connecting";
      this.error = "";
      this.sent = {};
      this.telemetry = {};
      this.stopped = false;
      this.dress(this.output);
      cameras.add(this);
      this.pump(camera, null);
      this.timer = setInterval(() => this.tick(), TICK_MS);
      this.configure();
    }

    /** Follow the extension's configuration: connect, apply changed settings, or let the camera through. */
    configure() {
      if (this.stopped || !config) return;
      if (!config.active) {
        this.hangUp();
        this.retries = 0;
        this.setState("bypassed");
      } else if (this.session) {
        this.pushSettings();
      } else {
        this.retryAt = 0; // something changed (address, key, switch): try now rather than after the back-off
        this.connect();
      }
    }

    async connect() {
      if (this.stopped || this.connecting || this.session || !config || !config.active) return;
      this.connecting = true;
      if (this.state !== "fallback") this.setState("connecting");
      const session = new client.MiradaSession({ fetch: relayFetch });
      this.session = session;
      const settings = { ...config.settings };
      try {
        let timer;
        const timeout = new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error("the service did not answer in time")), CONNECT_TIMEOUT_MS);
        });
        const remote = await Promise.race([session.start(this.camera, { settings }), timeout]).finally(() =>
          clearTimeout(timer),
        );
        if (this.session !== session) {
          session.stop(); // hung up while connecting: now that it has an id, the service can free it
          return;
        }
        this.sent = settings;
        this.sessionSince = performance.now();
        session.addEventListener("telemetry", (event) => {
          this.telemetry = event.detail;
        });
        session.addEventListener("error", (event) => console.warn("Mirada:", event.detail.error, event.detail.detail));
        session.addEventListener("state", (event) => {
          if (event.detail === "failed" || event.detail === "closed") this.lost(`the connection to the service ${event.detail}`);
        });
        this.pump(remote.getVideoTracks()[0], session);
        this.pushSettings(); // in case they changed while connecting
      } catch (err) {
        if (this.session === session) {
          this.session = null;
          session.stop();
          this.fail(describe(err));
        }
      } finally {
        this.connecting = false;
      }
    }

    fail(reason) {
      this.error = reason;
      this.retryAt = performance.now() + RETRY_MS[Math.min(this.retries, RETRY_MS.length - 1)];
      this.retries += 1;
      this.setState("fallback");
    }

    lost(reason) {
      if (!this.session) return;
      this.hangUp();
      this.fail(reason);
    }

    hangUp() {
      const session = this.session;
      this.session = null;
      this.lastRemoteAt = 0; // the camera's frames take over at once
      this.telemetry = {};
      if (this.remoteReader) this.remoteReader.cancel().catch(() => {});
      this.remoteReader = null;
      if (session) session.stop(); // closes the connection and DELETEs the session
    }

    pushSettings() {
      const session = this.session;
      if (!session || !session.id || !config) return;
      const patch = {};
      for (const [key, value] of Object.entries(config.settings)) {
        if (JSON.stringify(this.sent[key]) !== JSON.stringify(value)) patch[key] = value;
      }
      if (!Object.keys(patch).length) return;
      this.sent = { ...this.sent, ...patch };
      session.update(patch).catch((err) => console.warn("Mirada: settings not applied:", err.message));
    }

    /** Read frames from `track` (the camera's when `session` is null, else the service's) into the output. */
    async pump(track, session) {
      try {
        const reader = new native.Processor({ track }).readable.getReader();
        if (session) this.remoteReader = reader;
        else this.cameraReader = reader;
        for (;;) {
          const { value: frame, done } = await reader.read();
          if (done) break;
          if (session && this.session !== session) {
            frame.close();
            break;
          }
          this.offer(frame, Boolean(session));
        }
      } catch (_) {
        // the track ended or the reader was cancelled
      }
      if (!session) this.finish(); // the camera is gone (unplugged, permission revoked): so is the page's track
    }

    offer(frame, fromService) {
      const now = performance.now();
      if (fromService) {
        this.lastRemoteAt = now;
        if (this.state !== "live") {
          this.retries = 0;
          this.error = "";
          this.setState("live");
        }
      } else if (now - this.lastRemoteAt < STALE_MS) {
        frame.close(); // the service's version of this moment is on its way
        return;
      }
      if (this.stopped || this.writer.desiredSize <= 0) {
        frame.close(); // the page's track is not keeping up: drop rather than queue latency
        return;
      }
      // The two sources run on different clocks; the page's track gets one that only moves forward.
      this.timestamp = Math.max(Math.round(now * 1000), this.timestamp + 1);
      let out;
      try {
        out = new native.VideoFrame(frame, { timestamp: this.timestamp });
      } finally {
        frame.close();
      }
      this.writer.write(out).catch(() => out.close());
    }

    tick() {
      // A track stopped behind our back (MediaStreamTrack.prototype.stop.call(track)) is noticed here.
      for (const track of this.tracks) if (native.readyState.call(track) === "ended") this.release(track);
      if (this.stopped) return;
      const now = performance.now();
      if (this.session && !this.connecting && now - Math.max(this.lastRemoteAt, this.sessionSince) > STALL_MS) {
        this.lost("the service stopped sending video");
      } else if (this.state === "live" && now - this.lastRemoteAt > STALE_MS) {
        this.setState("connecting"); // frames are late: the camera shows meanwhile
      }
      if (!this.session && !this.connecting && config && config.active && this.retryAt && now >= this.retryAt) {
        this.retryAt = 0;
        this.connect();
      }
      this.ticks += 1;
      if (this.ticks % 2 === 0) this.report();
    }

    setState(state) {
      if (state === this.state) return;
      this.state = state;
      this.report();
    }

    report() {
      const t = this.telemetry || {};
      const face = (t.faces || [])[0];
      post({
        type: "status",
        status: {
          key: this.key,
          state: this.state,
          error: this.state === "fallback" ? this.error : "",
          fps: t.fps || 0,
          latency_ms: t.latency_ms || 0,
          corrected: Boolean(t.corrected),
          mode: t.mode || (this.session && this.session.settings ? this.session.settings.mode : null),
          faces: (t.faces || []).length,
          applied: face ? face.strength : null,
          camera: native.readyState.call(this.camera),
          session: Boolean(this.session && this.session.id),
        },
      });
    }

    /** Make `track` (the output or a clone) behave toward the page like the camera's own track. */
    dress(track) {
      const owner = this;
      this.tracks.add(track);
      const method = (value) => ({ configurable: true, writable: true, value });
      Object.defineProperties(track, {
        stop: method(function stop() {
          native.stop.call(this);
          owner.release(this);
        }),
        clone: method(function clone() {
          const copy = native.clone.call(this);
          owner.dress(copy);
          return copy;
        }),
        label: { configurable: true, get: () => (owner.mirada ? MIRADA_LABEL : owner.camera.label) },
        enabled: {
          configurable: true,
          get() {
            return native.enabled.get.call(this);
          },
          set(value) {
            native.enabled.set.call(this, value);
            // Video switched off in the app: the camera sends nothing of the face to the service either.
            owner.camera.enabled = [...owner.tracks].some((t) => native.enabled.get.call(t));
          },
        },
        getSettings: method(() => {
          const settings = owner.camera.getSettings();
          return owner.mirada ? { ...settings, deviceId: MIRADA_DEVICE_ID, groupId: MIRADA_GROUP_ID } : settings;
        }),
        getCapabilities: method(() => owner.camera.getCapabilities()),
        getConstraints: method(() => owner.camera.getConstraints()),
        applyConstraints: method((constraints) => {
          const { video } = withoutMirada(constraints || {});
          return owner.camera.applyConstraints(video === true ? {} : video); // the output follows the camera
        }),
      });
    }

    release(track) {
      this.tracks.delete(track);
      if (!this.tracks.size) this.finish();
    }

    /** The page stopped its last track, or the camera ended: camera off, session closed. */
    finish() {
      if (this.stopped) return;
      this.stopped = true;
      cameras.delete(this);
      clearInterval(this.timer);
      this.hangUp();
      native.stop.call(this.camera);
      if (this.cameraReader) this.cameraReader.cancel().catch(() => {});
      this.writer.close().catch(() => {}); // ends the page's tracks if they are still live
      this.state = "stopped";
      this.report();
    }
  }

  // --- the wrapped media API ----------------------------------------------------------------------------------

  function miradaDevice(camera) {
    const fields = { deviceId: MIRADA_DEVICE_ID, kind: "videoinput", label: MIRADA_LABEL, groupId: MIRADA_GROUP_ID };
    const proto = (globalThis.InputDeviceInfo || globalThis.MediaDeviceInfo).prototype;
    const info = Object.create(proto);
    for (const [key, value] of Object.entries(fields)) Object.defineProperty(info, key, { value, enumerable: true });
    Object.defineProperty(info, "toJSON", { value: () => ({ ...fields }) });
    Object.defineProperty(info, "getCapabilities", {
      value: () => ({ ...camera.getCapabilities(), deviceId: MIRADA_DEVICE_ID, groupId: MIRADA_GROUP_ID }),
    });
    return info;
  }

  async function enumerateDevices() {
    const [devices, current] = await Promise.all([native.enumerateDevices.call(this), currentConfig()]);
    const first = devices.findIndex((device) => device.kind === "videoinput");
    // Labels appear once the page may use the camera; until then Mirada's entry would give away more than
    // the browser does, so it only appears alongside them.
    if (!current.active || first < 0 || !devices[first].label) return devices;
    return [...devices.slice(0, first), miradaDevice(devices[first]), ...devices.slice(first)];
  }

  async function getUserMedia(constraints) {
    const { video, mirada } = withoutMirada(constraints && constraints.video);
    const asked = mirada ? { ...constraints, video } : constraints;
    if (!video) return native.getUserMedia.call(this, asked);
    const [stream, current] = await Promise.all([native.getUserMedia.call(this, asked), currentConfig()]);
    const [track] = stream.getVideoTracks();
    if (!current.active || !track) return stream;
    try {
      const camera = new CorrectedCamera(track, mirada);
      return new native.MediaStream([...stream.getAudioTracks(), camera.output]);
    } catch (err) {
      console.warn("Mirada: passing the camera through:", err);
      return stream;
    }
  }

  for (const [name, value] of Object.entries({ getUserMedia, enumerateDevices })) {
    Object.defineProperty(MediaDevices.prototype, name, { configurable: true, writable: true, value });
  }

  // Leaving the page: hang up now rather than when the service notices the connection is gone.
  window.addEventListener("pagehide", () => cameras.forEach((camera) => camera.hangUp()));
})();
