// A small client for the Mirada service: sends a camera track over WebRTC, returns the corrected track, and
// carries settings and telemetry over the session's data channel (REST when the channel is not open).
// No dependencies. One file for two users: the demo page imports it as a module, and the browser extension runs it
// as a classic content script in the page's own world (content scripts cannot be modules). Both get
// `globalThis.MiradaClient = { MiradaSession, MiradaError, readiness }`; the IIFE keeps everything else out of
// the page's global scope.
(() => {
  "use strict";

  const ICE_GATHER_TIMEOUT_MS = 3000;

  // Captured when this file runs, which in the extension is document_start, before any of the page's scripts:
  // call apps often wrap RTCPeerConnection (for statistics), and ours must not pass through their wrappers.
  const { RTCPeerConnection, MediaStream } = globalThis;
  const nativeFetch = globalThis.fetch;

  class MiradaError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      if (typeof body.detail === "string") return body.detail;
      if (Array.isArray(body.detail)) return body.detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
    } catch (_) {
      // not JSON: fall through to the status line
    }
    return `${response.status} ${response.statusText}`;
  }

  function iceGatheringComplete(pc) {
    // The service does not trickle ICE: the offer must carry its candidates.
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ICE_GATHER_TIMEOUT_MS);
      function done() {
        clearTimeout(timer);
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
      function check() {
        if (pc.iceGatheringState === "complete") done();
      }
      pc.addEventListener("icegatheringstatechange", check);
    });
  }

  async function keepResolution(pc, track) {
    // On a busy machine WebRTC sends a smaller picture by default; the corrector needs the face's pixels, and the
    // corrected track would change size mid-call. Frames are dropped instead (the service keeps the newest anyway).
    const sender = pc.getSenders().find((s) => s.track === track);
    if (!sender) return;
    try {
      const parameters = sender.getParameters();
      parameters.degradationPreference = "maintain-resolution";
      await sender.setParameters(parameters);
    } catch (_) {
      // a browser without the setting: its default it is
    }
  }

  class MiradaSession extends EventTarget {
    /**
     * @param {object} options
     * @param {string} [options.baseUrl] service address, default this page's origin
     * @param {string} [options.apiKey] the service's API key, if it has one
     * @param {Function} [options.fetch] how to make HTTP requests (default window.fetch); the extension passes
     *   one that relays them through its service worker, which holds the API key and the service's address
     */
    constructor({ baseUrl = "", apiKey = "", fetch = null } = {}) {
      super();
      this.baseUrl = baseUrl.replace(/\/$/, "");
      this.apiKey = apiKey;
      this.fetch = fetch || ((url, init) => nativeFetch.call(globalThis, url, init));
      this.id = null;
      this.token = null;
      this.settings = null;
      this.pc = null;
      this.channel = null;
    }

    headers(extra = {}) {
      const headers = { "Content-Type": "application/json", ...extra };
      if (this.apiKey) headers["X-API-Key"] = this.apiKey;
      if (this.token) headers["X-Session-Token"] = this.token;
      return headers;
    }

    /** Send `videoTrack` (and `audioTrack`, passed through) and resolve with the corrected MediaStream. */
    async start(videoTrack, { settings = {}, audioTrack = null } = {}) {
      const pc = new RTCPeerConnection({ iceServers: [] });
      this.pc = pc;
      const remote = new MediaStream();
      const gotVideo = new Promise((resolve) => {
        pc.addEventListener("track", (event) => {
          remote.addTrack(event.track);
          if (event.track.kind === "video") resolve();
        });
      });
      pc.addTransceiver(videoTrack, { direction: "sendrecv" });
      if (audioTrack) pc.addTransceiver(audioTrack, { direction: "sendrecv" });
      this.channel = pc.createDataChannel("mirada");
      this.channel.addEventListener("message", (event) => this.#onMessage(event.data));
      this.channel.addEventListener("open", () => this.dispatchEvent(new Event("channelopen")));
      pc.addEventListener("connectionstatechange", () => {
        this.dispatchEvent(new CustomEvent("state", { detail: pc.connectionState }));
      });

      await pc.setLocalDescription(await pc.createOffer());
      await iceGatheringComplete(pc);
      let response;
      try {
        response = await this.fetch(`${this.baseUrl}/api/v1/sessions`, {
          method: "POST",
          headers: this.headers(),
          body: JSON.stringify({ sdp: pc.localDescription.sdp, type: "offer", settings }),
        });
      } catch (err) {
        pc.close(); // the service is unreachable: nothing else will close this connection
        throw err;
      }
      if (!response.ok) {
        pc.close();
        throw new MiradaError(await errorMessage(response), response.status);
      }
      const body = await response.json();
      this.id = body.id;
      this.token = body.token;
      this.settings = body.settings;
      await pc.setRemoteDescription({ type: "answer", sdp: body.sdp });
      await keepResolution(pc, videoTrack);
      await gotVideo;
      return remote;
    }

    #onMessage(data) {
      let message;
      try {
        message = JSON.parse(data);
      } catch (_) {
        return;
      }
      if (message.type === "settings") this.settings = message.settings;
      this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
    }

    /** Change some settings: over the data channel when open (lowest latency), else with PATCH. */
    async update(patch) {
      if (this.channel && this.channel.readyState === "open") {
        this.channel.send(JSON.stringify({ type: "settings", settings: patch }));
        return;
      }
      if (!this.id) return;
      const response = await this.fetch(`${this.baseUrl}/api/v1/sessions/${this.id}`, {
        method: "PATCH",
        headers: this.headers(),
        body: JSON.stringify(patch),
      });
      if (!response.ok) throw new MiradaError(await errorMessage(response), response.status);
      this.settings = (await response.json()).settings;
      this.dispatchEvent(new CustomEvent("settings", { detail: { type: "settings", settings: this.settings } }));
    }

    /** Hang up (the service frees the session). */
    async stop() {
      const { id } = this;
      const headers = this.headers();
      if (this.channel) this.channel.close();
      if (this.pc) this.pc.close();
      this.pc = null;
      this.channel = null;
      this.id = null;
      this.token = null;
      if (id) {
        try {
          await this.fetch(`${this.baseUrl}/api/v1/sessions/${id}`, { method: "DELETE", headers });
        } catch (_) {
          // the service is gone: nothing to free
        }
      }
    }
  }

  /** Ask the service whether it is up (and which backend it runs). */
  async function readiness(baseUrl = "") {
    const response = await nativeFetch.call(globalThis, `${baseUrl.replace(/\/$/, "")}/readyz`);
    return response.json();
  }

  globalThis.MiradaClient = Object.freeze({ MiradaSession, MiradaError, readiness });
})();
