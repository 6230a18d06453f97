// The extension's service worker. Three jobs:
// 1. Inject the content scripts only into the sites on the list (registered here, so the extension needs no
//    standing access to every site: each site is granted by the person who adds it).
// 2. Make the service's REST calls for the pages (the page's own world cannot: the page's CORS and CSP would stop
//    it, and it must never see the API key). Only the session routes get through, only from listed sites.
// 3. Keep each tab's status (for the popup) and show it on the toolbar icon: its badge and title say when the
//    camera is corrected, and when the service is unreachable and the page gets the plain camera instead.
importScripts("shared.js");

const SCRIPT_IDS = ["mirada-page", "mirada-bridge"];
const REQUEST_TIMEOUT_MS = 10000;
const ICONS = {
  on: { 16: "icons/mirada-16.png", 32: "icons/mirada-32.png", 48: "icons/mirada-48.png" },
  off: { 16: "icons/mirada-off-16.png", 32: "icons/mirada-off-32.png", 48: "icons/mirada-off-48.png" },
};

async function config() {
  return { ...MIRADA.DEFAULTS, ...(await chrome.storage.local.get(null)) };
}

// --- content scripts, on the listed sites only ----------------------------------------------------------------

let syncing = Promise.resolve();

/** Register the content scripts for the listed sites that Chrome has granted (serialised: calls overlap). */
function syncContentScripts() {
  syncing = syncing.then(registerForSites).catch((err) => console.error("Mirada: content scripts:", err));
  return syncing;
}

async function registerForSites() {
  const { sites } = await config();
  const matches = [];
  for (const site of sites) {
    const patterns = MIRADA.sitePatterns(site);
    if (patterns && (await chrome.permissions.contains({ origins: [patterns.permission] }))) {
      matches.push(patterns.script);
    }
  }
  const registered = await chrome.scripting.getRegisteredContentScripts({ ids: SCRIPT_IDS });
  if (registered.length) await chrome.scripting.unregisterContentScripts({ ids: registered.map((s) => s.id) });
  if (!matches.length) return;
  const common = { matches, runAt: "document_start", allFrames: true, persistAcrossSessions: true };
  await chrome.scripting.registerContentScripts([
    // The page's world, first: it must wrap getUserMedia before any of the page's scripts can call it.
    { id: SCRIPT_IDS[0], js: ["mirada-client.js", "page.js"], world: "MAIN", ...common },
    { id: SCRIPT_IDS[1], js: ["shared.js", "bridge.js"], world: "ISOLATED", ...common },
  ]);
}

chrome.runtime.onInstalled.addListener(async ({ reason }) => {
  if (reason === "install") await chrome.storage.local.set(MIRADA.DEFAULTS);
  await syncContentScripts();
});
chrome.runtime.onStartup.addListener(syncContentScripts);
chrome.permissions.onAdded.addListener(syncContentScripts);
chrome.permissions.onRemoved.addListener(syncContentScripts);
chrome.storage.onChanged.addListener((changes, area) => {
  if (area === "local" && changes.sites) syncContentScripts();
});

// --- tab status -------------------------------------------------------------------------------------------------

// {tabId: {origin, updated, streams: {key: status}, sessions: {id: token}}}, mirrored in chrome.storage.session
// (the worker is stopped when idle; the popup reads it from there).
const tabsReady = chrome.storage.session.get("tabs").then((stored) => stored.tabs || {});
let saving = Promise.resolve();

async function saveTabs() {
  const tabs = await tabsReady;
  saving = saving.then(() => chrome.storage.session.set({ tabs })).catch(() => {});
  return saving;
}

async function tabEntry(tabId, origin) {
  const tabs = await tabsReady;
  if (!tabs[tabId]) tabs[tabId] = { origin, updated: Date.now(), streams: {}, sessions: {} };
  return tabs[tabId];
}

/** Hang up sessions a page left behind (closed tab, navigation, crash): the service frees them at once. */
async function closeSessions(sessions) {
  const entries = Object.entries(sessions || {});
  if (!entries.length) return;
  const cfg = await config();
  await Promise.all(
    entries.map(([id, token]) =>
      fetch(`${cfg.serviceUrl}/api/v1/sessions/${id}`, {
        method: "DELETE",
        headers: { ...(cfg.apiKey ? { "X-API-Key": cfg.apiKey } : {}), "X-Session-Token": token },
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      }).catch(() => {}),
    ),
  );
}

function summary(entry) {
  const streams = Object.values((entry && entry.streams) || {}).filter((s) => s.state !== "stopped");
  const fallback = streams.find((s) => s.state === "fallback");
  if (fallback) {
    return {
      text: "!",
      color: "#d97706",
      icon: "off",
      title: `Mirada: ${fallback.error || "the service is unreachable"}. Your camera is shown uncorrected.`,
    };
  }
  const live = streams.find((s) => s.state === "live");
  if (live) {
    const rate = live.fps ? ` (${Math.round(live.fps)} fps, ${Math.round(live.latency_ms || 0)} ms)` : "";
    return { text: "ON", color: "#15803d", icon: "on", title: `Mirada: eye contact on${rate}` };
  }
  if (streams.some((s) => s.state === "connecting")) {
    return { text: "…", color: "#475569", icon: "on", title: "Mirada: connecting to the service" };
  }
  if (streams.some((s) => s.state === "bypassed")) {
    return { text: "OFF", color: "#475569", icon: "off", title: "Mirada is off here: your camera is shown uncorrected" };
  }
  return { text: "", color: "#475569", icon: "on", title: "Mirada" };
}

const shown = new Map(); // tabId -> the badge last set, so that a status every second does not repaint it

async function showBadge(tabId, entry) {
  const badge = summary(entry);
  const key = JSON.stringify(badge);
  if (shown.get(tabId) === key) return;
  shown.set(tabId, key);
  try {
    await Promise.all([
      chrome.action.setBadgeText({ tabId, text: badge.text }),
      chrome.action.setBadgeBackgroundColor({ tabId, color: badge.color }),
      chrome.action.setTitle({ tabId, title: badge.title }),
      chrome.action.setIcon({ tabId, path: ICONS[badge.icon] }),
    ]);
  } catch (_) {
    shown.delete(tabId); // the tab has gone
  }
}

// --- messages from the content scripts ----------------------------------------------------------------------

async function relay(message, sender) {
  const cfg = await config();
  if (!cfg.enabled || !MIRADA.siteAllowed(cfg.sites, sender.url || sender.origin)) {
    return { error: "Mirada is not enabled on this site" };
  }
  const method = String(message.method || "GET").toUpperCase();
  if (!MIRADA.allowedRequest(method, message.path)) return { error: `not allowed: ${method} ${message.path}` };
  const headers = { "Content-Type": "application/json" };
  if (cfg.apiKey) headers["X-API-Key"] = cfg.apiKey;
  if (message.token) headers["X-Session-Token"] = String(message.token);
  let response;
  let body;
  try {
    response = await fetch(`${cfg.serviceUrl}${message.path}`, {
      method,
      headers,
      body: typeof message.body === "string" ? message.body : undefined,
      credentials: "omit",
      cache: "no-store",
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    body = await response.text();
  } catch (err) {
    return { error: `cannot reach the Mirada service at ${cfg.serviceUrl} (${err.message})` };
  }
  // Remember the sessions this tab opened, to close them if the page goes away without hanging up.
  if (sender.tab) {
    const entry = await tabEntry(sender.tab.id, sender.origin);
    if (method === "POST" && response.status === 201) {
      try {
        const created = JSON.parse(body);
        entry.sessions[created.id] = created.token;
      } catch (_) {
        // not the service's answer: nothing to remember
      }
    } else if (method === "DELETE") {
      delete entry.sessions[message.path.split("/").pop()];
    }
    await saveTabs();
  }
  return { status: response.status, statusText: response.statusText, body };
}

async function onStatus(message, sender) {
  if (!sender.tab) return;
  const entry = await tabEntry(sender.tab.id, sender.origin);
  const status = message.status || {};
  const key = `${sender.frameId}/${status.key}`;
  // Apps open and stop cameras all through a call: keep only the newest stopped one, for the record.
  for (const [other, stream] of Object.entries(entry.streams)) {
    if (other !== key && stream.state === "stopped" && status.state === "stopped") delete entry.streams[other];
  }
  entry.streams[key] = { ...status, frameId: sender.frameId, updated: Date.now() };
  entry.updated = Date.now();
  if (sender.frameId === 0) entry.origin = sender.origin;
  await saveTabs();
  await showBadge(sender.tab.id, entry);
}

/** A new document in a tab's top frame: whatever the previous one left is over. */
async function onHello(sender) {
  if (!sender.tab || sender.frameId !== 0) return;
  const tabs = await tabsReady;
  const old = tabs[sender.tab.id];
  tabs[sender.tab.id] = { origin: sender.origin, updated: Date.now(), streams: {}, sessions: {} };
  await saveTabs();
  await showBadge(sender.tab.id, tabs[sender.tab.id]);
  if (old) await closeSessions(old.sessions);
}

chrome.runtime.onMessage.addListener((message, sender, sendResponse) => {
  if (sender.id !== chrome.runtime.id || !message) return false;
  if (message.type === "fetch") {
    relay(message, sender).then(sendResponse);
    return true; // answers asynchronously
  }
  if (message.type === "status") onStatus(message, sender);
  else if (message.type === "hello") onHello(sender);
  return false;
});

chrome.tabs.onRemoved.addListener(async (tabId) => {
  const tabs = await tabsReady;
  const entry = tabs[tabId];
  delete tabs[tabId];
  shown.delete(tabId);
  await saveTabs();
  if (entry) await closeSessions(entry.sessions);
});
