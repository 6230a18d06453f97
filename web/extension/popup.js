// The popup: Mirada's switch, the session settings (saved in chrome.storage.local; every tab's bridge.js hears the
// change and its sessions apply it over their data channels), the service's address and key, the site list, and
// the status of the current tab (from chrome.storage.session, kept by the service worker).
"use strict";

const STATUS_TEXT = {
  live: "Eye contact on",
  connecting: "Connecting to the service…",
  fallback: "Service unreachable: camera shown uncorrected",
  bypassed: "Mirada is off here: camera shown uncorrected",
};

const $ = (id) => document.getElementById(id);
let stored = { ...MIRADA.DEFAULTS };
let tab = null; // the tab this popup speaks about: {id, url}
let tabs = {}; // the service worker's per-tab status

let sayTimer = null;
function say(text, error = false) {
  $("message").textContent = text;
  $("message").classList.toggle("error", error);
  clearTimeout(sayTimer);
  if (!error) sayTimer = setTimeout(() => ($("message").textContent = ""), 6000);
}

async function save(values) {
  Object.assign(stored, values);
  await chrome.storage.local.set(values);
}

function saveSettings(patch) {
  return save({ settings: { ...stored.settings, ...patch } });
}

const signed = (deg) => `${deg > 0 ? "+" : ""}${deg}°`;

// --- rendering ------------------------------------------------------------------------------------------------

function renderControls() {
  const settings = { ...MIRADA.DEFAULTS.settings, ...stored.settings };
  $("enabled").checked = stored.enabled;
  document.querySelectorAll("[data-mode]").forEach((button) => {
    const on = button.dataset.mode === settings.mode;
    button.classList.toggle("on", on);
    button.setAttribute("aria-checked", String(on));
  });
  $("strength").value = String(Math.round(settings.strength * 100));
  $("strength-value").textContent = `${$("strength").value}%`;
  $("pitch").value = String(settings.target_pitch_deg);
  $("pitch-value").textContent = signed(settings.target_pitch_deg);
  $("yaw").value = String(settings.target_yaw_deg);
  $("yaw-value").textContent = signed(settings.target_yaw_deg);
  if (document.activeElement !== $("service-url")) $("service-url").value = stored.serviceUrl;
  if (document.activeElement !== $("api-key")) $("api-key").value = stored.apiKey;
  renderSites();
}

function renderSites() {
  const list = $("sites");
  list.replaceChildren(
    ...stored.sites.map((site) => {
      const item = document.createElement("li");
      const name = document.createElement("span");
      name.textContent = site;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "×";
      remove.title = `Stop using Mirada on ${site}`;
      remove.setAttribute("aria-label", remove.title);
      remove.addEventListener("click", () => removeSite(site));
      item.append(name, remove);
      return item;
    }),
  );
  $("sites-count").textContent = String(stored.sites.length);
  const web = tab && /^https?:/.test(tab.url || "");
  $("site-row").hidden = !web;
  if (web) {
    const host = new URL(tab.url).hostname;
    $("site-name").textContent = host;
    $("site-toggle").checked = MIRADA.siteAllowed(stored.sites, tab.url);
  }
}

/** The status of the tab this popup speaks about, or else of the tab that used Mirada last. */
function currentEntry() {
  const live = (entry) => entry && Object.values(entry.streams || {}).some((s) => s.state !== "stopped");
  if (tab && live(tabs[tab.id])) return tabs[tab.id];
  if (tab && /^https?:/.test(tab.url || "")) return tabs[tab.id] || null;
  const recent = Object.values(tabs)
    .filter(live)
    .sort((a, b) => b.updated - a.updated);
  return recent[0] || null;
}

function renderStatus() {
  const entry = currentEntry();
  const streams = Object.values((entry && entry.streams) || {}).filter((s) => s.state !== "stopped");
  const order = ["fallback", "live", "connecting", "bypassed"];
  const stream = order.map((state) => streams.find((s) => s.state === state)).find(Boolean);
  const card = $("status");
  card.dataset.state = stream ? stream.state : "none";
  if (!stream) {
    const listed = tab && /^https?:/.test(tab.url || "") && MIRADA.siteAllowed(stored.sites, tab.url);
    $("status-text").textContent = !stored.enabled
      ? "Mirada is off"
      : tab && /^https?:/.test(tab.url || "") && !listed
        ? "Not used on this site"
        : "No camera in use on this tab";
    $("status-detail").textContent = "";
    $("stats").hidden = true;
    return;
  }
  let text = STATUS_TEXT[stream.state] || stream.state;
  if (stream.state === "live" && stream.mode && stream.mode !== "correct") text = `Connected (mode: ${stream.mode})`;
  $("status-text").textContent = streams.length > 1 ? `${text} · ${streams.length} cameras` : text;
  let where = "";
  try {
    where = new URL(entry.origin).host;
  } catch (_) {
    // no origin yet, or an opaque one ("null", a sandboxed frame)
  }
  $("status-detail").textContent = stream.state === "fallback" ? `${where}: ${stream.error}` : where;
  $("stats").hidden = stream.state !== "live";
  $("fps").textContent = stream.fps ? stream.fps.toFixed(0) : "–";
  $("latency").textContent = stream.latency_ms ? stream.latency_ms.toFixed(0) : "–";
  $("applied").textContent = stream.applied == null ? "no face" : `${Math.round(stream.applied * 100)}%`;
}

async function checkService() {
  const state = $("service-state");
  state.textContent = "checking…";
  try {
    const response = await fetch(`${stored.serviceUrl}/readyz`, { cache: "no-store", signal: AbortSignal.timeout(3000) });
    const ready = await response.json();
    state.textContent = response.ok
      ? `ready · ${ready.backend}${ready.passthrough ? " (no weights)" : ""}${ready.degraded ? " · degraded" : ""}`
      : `${ready.status || response.status}`;
    state.dataset.ok = String(response.ok);
  } catch (_) {
    state.textContent = "unreachable";
    state.dataset.ok = "false";
  }
}

// --- sites --------------------------------------------------------------------------------------------------

async function addSite(text) {
  const site = MIRADA.normaliseSite(text);
  if (!site) {
    say(`"${text}" is not a site name (for example meet.google.com or *.example.com).`, true);
    return false;
  }
  // Asked first, while the click still counts as the person's gesture (Chrome requires one).
  const granted = await chrome.permissions.request({ origins: [MIRADA.sitePatterns(site).permission] });
  if (!granted) {
    say(`Chrome was not allowed to let Mirada run on ${site}.`, true);
    return false;
  }
  if (!stored.sites.includes(site)) await save({ sites: [...stored.sites, site] });
  say(`Mirada runs on ${site} from its next page load.`);
  return true;
}

async function removeSite(site) {
  const sites = stored.sites.filter((s) => s !== site);
  await save({ sites });
  const { permission } = MIRADA.sitePatterns(site);
  if (!sites.some((s) => MIRADA.sitePatterns(s).permission === permission)) {
    // Give the access back (Chrome refuses for the loopback addresses, which the service needs).
    await chrome.permissions.remove({ origins: [permission] }).catch(() => {});
  }
  renderSites();
}

// --- controls -----------------------------------------------------------------------------------------------

$("enabled").addEventListener("change", () => save({ enabled: $("enabled").checked }));

document.querySelectorAll("[data-mode]").forEach((button) => {
  button.addEventListener("click", async () => {
    await saveSettings({ mode: button.dataset.mode });
    renderControls();
  });
});

$("strength").addEventListener("input", () => ($("strength-value").textContent = `${$("strength").value}%`));
$("strength").addEventListener("change", () => saveSettings({ strength: Number($("strength").value) / 100 }));
for (const axis of ["pitch", "yaw"]) {
  $(axis).addEventListener("input", () => ($(`${axis}-value`).textContent = signed(Number($(axis).value))));
  $(axis).addEventListener("change", () => saveSettings({ [`target_${axis}_deg`]: Number($(axis).value) }));
}
$("reset-target").addEventListener("click", async () => {
  await saveSettings({ target_pitch_deg: 0, target_yaw_deg: 0 });
  renderControls();
});

$("save-connection").addEventListener("click", async () => {
  const url = MIRADA.normaliseServiceUrl($("service-url").value);
  if (!url) {
    say("The address should look like http://127.0.0.1:8000.", true);
    return;
  }
  // Mirada may only call hosts Chrome has granted (the loopback addresses are granted at install).
  const granted = await chrome.permissions.request({ origins: [MIRADA.servicePermission(url)] });
  if (!granted) {
    say(`Chrome was not allowed to let Mirada reach ${url}.`, true);
    return;
  }
  await save({ serviceUrl: url, apiKey: $("api-key").value.trim() });
  $("service-url").value = url;
  say("Saved: cameras in use reconnect now.");
  await checkService();
});

$("add-site").addEventListener("click", async () => {
  if (await addSite($("site-input").value)) $("site-input").value = "";
  renderSites();
});
$("site-input").addEventListener("keydown", (event) => {
  if (event.key === "Enter") $("add-site").click();
});

$("site-toggle").addEventListener("change", async () => {
  const host = new URL(tab.url).hostname;
  if ($("site-toggle").checked) {
    if (!(await addSite(host))) $("site-toggle").checked = false;
  } else {
    const matching = stored.sites.filter((site) => MIRADA.siteAllowed([site], tab.url));
    for (const site of matching) await removeSite(site);
  }
  $("reload").hidden = false;
  renderStatus();
});
$("reload").addEventListener("click", () => {
  chrome.tabs.reload(tab.id);
  window.close();
});

chrome.storage.onChanged.addListener((changes, area) => {
  if (area === "session" && changes.tabs) {
    tabs = changes.tabs.newValue || {};
    renderStatus();
  } else if (area === "local") {
    for (const [key, { newValue }] of Object.entries(changes)) stored[key] = newValue ?? MIRADA.DEFAULTS[key];
    renderControls();
    renderStatus();
  }
});

async function init() {
  stored = { ...MIRADA.DEFAULTS, ...(await chrome.storage.local.get(null)) };
  const [active] = await chrome.tabs.query({ active: true, currentWindow: true });
  const own = await chrome.tabs.getCurrent(); // set when this page is open in a tab rather than as the popup
  tab = active && !(own && own.id === active.id) ? { id: active.id, url: active.url || "" } : null;
  tabs = (await chrome.storage.session.get("tabs")).tabs || {};
  renderControls();
  renderStatus();
  await checkService();
}

// For people and for automated tests: the popup's state.
window.miradaPopup = { ready: init().then(() => true) };
