// The content script in the extension's isolated world: the go-between for page.js (in the page's own world,
// which cannot use chrome.* APIs) and the rest of the extension. It tells page.js whether Mirada is on for this
// site and which settings to use (live, as the popup changes them), relays its REST calls to the service worker,
// and forwards its status for the toolbar icon and the popup.
//
// The two worlds talk over a MessageChannel whose port page.js hands over once with window.postMessage: the
// page's own message listeners never see the traffic, and it cannot be mistaken for the page's messages.
(() => {
  "use strict";

  const HELLO = "mirada:hello:1";
  const READY = "mirada:bridge-ready:1";

  let port = null;
  let stored = null; // chrome.storage.local with defaults

  function active() {
    return Boolean(stored && stored.enabled && MIRADA.siteAllowed(stored.sites, location.href));
  }

  function sendConfig() {
    if (!port || !stored) return;
    // Only what the page's world needs: never the service's address or its API key.
    port.postMessage({ type: "config", active: active(), settings: stored.settings || {} });
  }

  function send(message) {
    try {
      return chrome.runtime.sendMessage(message);
    } catch (err) {
      // The extension was reloaded or removed under this page: there is no one to tell.
      return Promise.reject(err);
    }
  }

  async function onPageMessage(event) {
    const message = event.data || {};
    if (message.type === "fetch") {
      let answer;
      if (!active()) {
        answer = { error: "Mirada is off on this site" };
      } else {
        try {
          answer = await send({
            type: "fetch",
            method: message.method,
            path: message.path,
            body: message.body,
            token: message.token,
          });
        } catch (err) {
          answer = { error: `the extension is unavailable (${err.message})` };
        }
      }
      port.postMessage({ type: "response", id: message.id, ...(answer || { error: "no answer" }) });
    } else if (message.type === "status") {
      send({ type: "status", status: message.status }).catch(() => {});
    }
  }

  function onHello(event) {
    if (event.source !== window || !event.data || event.data.mirada !== HELLO || !event.ports[0]) return;
    // Ours: keep it from the page's own listeners, and take only the first (page.js posts it at document_start,
    // before any page script runs).
    event.stopImmediatePropagation();
    if (port) return;
    port = event.ports[0];
    port.onmessage = onPageMessage;
    sendConfig();
  }

  window.addEventListener("message", onHello, true);
  // In case page.js said hello before this script listened: it says it again when it hears this.
  window.postMessage({ mirada: READY }, "*");

  chrome.storage.local.get(null).then((values) => {
    stored = { ...MIRADA.DEFAULTS, ...values };
    sendConfig();
  });
  chrome.storage.onChanged.addListener((changes, area) => {
    if (area !== "local" || !stored) return;
    for (const [key, { newValue }] of Object.entries(changes)) stored[key] = newValue ?? MIRADA.DEFAULTS[key];
    sendConfig();
  });

  // A new document in this tab: the service worker closes what the previous one may have left open.
  if (window === window.top) send({ type: "hello" }).catch(() => {});
})();
