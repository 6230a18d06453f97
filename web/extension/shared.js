// What the service worker, the popup and the isolated content script share: stored defaults, the site list's
// rules, and the addresses Mirada may talk to. A classic script (content scripts cannot be modules): it defines
// one constant, MIRADA, in whichever world loads it (never the page's own).
const MIRADA = (() => {
  "use strict";

  /** chrome.storage.local, as first installed. */
  const DEFAULTS = Object.freeze({
    enabled: true,
    serviceUrl: "http://127.0.0.1:8000",
    apiKey: "",
    // Sites (host names, optionally "*.domain" or "host:port") whose pages get the corrected camera. Empty at
    // first: adding a site asks Chrome for access to it, so the extension only ever runs where it was invited.
    sites: [],
    // Passed to the service as session settings (any field of the service's Settings model).
    settings: { mode: "correct", strength: 1, target_pitch_deg: 0, target_yaw_deg: 0 },
  });

  const SITE_RE = /^(\*\.)?([a-z0-9-]+(\.[a-z0-9-]+)*|\[[0-9a-f:]+\])(:\d{1,5})?$/;

  /** A site entry from what a person typed or pasted (an address: scheme and path dropped, lower case), or null. */
  function normaliseSite(text) {
    let site = String(text || "").trim().toLowerCase();
    site = site.replace(/^[a-z]+:\/\//, "").replace(/\/.*$/, "");
    return SITE_RE.test(site) ? site : null;
  }

  /** Whether `url` (a location or URL string) is on the list. Entries without a port match every port. */
  function siteAllowed(sites, url) {
    let parsed;
    try {
      parsed = new URL(String(url));
    } catch (_) {
      return false;
    }
    if (parsed.protocol !== "https:" && parsed.protocol !== "http:") return false;
    const host = parsed.hostname.toLowerCase();
    const port = parsed.port || (parsed.protocol === "https:" ? "443" : "80");
    return (sites || []).some((entry) => {
      const site = normaliseSite(entry);
      if (!site) return false;
      const [, wildcard, name, , portPart] = site.match(SITE_RE);
      if (portPart && portPart.slice(1) !== port) return false;
      return wildcard ? host === name || host.endsWith(`.${name}`) : host === name;
    });
  }

  // Browsers give the camera to secure pages only: https, or plain http on this machine's own addresses.
  const LOOPBACK = /^(localhost|.*\.localhost|127(\.\d{1,3}){3}|\[::1\])$/;

  /** Chrome match patterns for a site entry (content-script registration and permission requests), or null. */
  function sitePatterns(entry) {
    const site = normaliseSite(entry);
    if (!site) return null;
    const [, wildcard, name, , portPart] = site.match(SITE_RE);
    const host = `${wildcard ? "*." : ""}${name}`;
    const scheme = !wildcard && LOOPBACK.test(name) ? "http" : "https";
    // Permissions ignore ports; content scripts honour them.
    return { permission: `${scheme}://${host}/*`, script: `${scheme}://${host}${portPart || ""}/*` };
  }

  /** The service's origin ("http://127.0.0.1:8000") from what a person typed, or null. */
  function normaliseServiceUrl(text) {
    let url;
    try {
      url = new URL(String(text || "").trim());
    } catch (_) {
      return null;
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") return null;
    return url.origin;
  }

  /** The host permission Chrome needs before the extension may call the service at `serviceUrl`. */
  function servicePermission(serviceUrl) {
    const url = new URL(serviceUrl);
    return `${url.protocol}//${url.hostname}/*`;
  }

  // The REST calls the page's world may ask the service worker to make for it (nothing else gets through).
  const SESSION_PATH = /^\/api\/v1\/sessions(\/[A-Za-z0-9_-]{1,64})?$/;
  function allowedRequest(method, path) {
    const match = SESSION_PATH.exec(String(path));
    if (!match) return false;
    return match[1] ? ["GET", "PATCH", "DELETE"].includes(method) : method === "POST";
  }

  return Object.freeze({
    DEFAULTS,
    normaliseSite,
    siteAllowed,
    sitePatterns,
    normaliseServiceUrl,
    servicePermission,
    allowedRequest,
  });
})();
