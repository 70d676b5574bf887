// The API client: same-origin JSON reads, ETag revalidation, a bearer key kept for the tab
// or (when asked) on the device, and one connection state the page shows (live, unreachable,
// key needed).

const KEY_STORAGE = "runwatch.apiKey";
const TIMEOUT_MS = 10000;
const ETAG_CACHE_SIZE = 100;

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

/** The server did not answer, or answered that it cannot serve reads right now. */
export class Unreachable extends Error {
  constructor(message, status = null) {
    super(message);
    this.status = status;
  }
}

export class AuthRequired extends Error {
  constructor(status, problem, { rejectedKey = false } = {}) {
    super((problem && problem.detail) || "An API key is needed.");
    this.status = status;
    this.problem = problem || {};
    // A key was sent and the server refused it (401); it has been dropped.
    this.rejectedKey = rejectedKey;
  }
}

// Used when storage is disabled, so that a key still works until the next reload.
let memoryKey = "";

function stores() {
  const found = [];
  for (const name of ["sessionStorage", "localStorage"]) {
    try {
      if (window[name]) found.push(window[name]);
    } catch {
      // Access to storage can throw (disabled by the browser's settings).
    }
  }
  return found;
}

export function getKey() {
  for (const store of stores()) {
    try {
      const key = store.getItem(KEY_STORAGE);
      if (key) return key;
    } catch {
      // Treated as absent.
    }
  }
  return memoryKey;
}

/** True when the key is kept on this device (localStorage) rather than for this tab. */
export function keyRemembered() {
  try {
    return Boolean(localStorage.getItem(KEY_STORAGE));
  } catch {
    return false;
  }
}

/** Keep `key` for this tab, or on this device when `remember`; an empty key forgets it. */
export function setKey(key, { remember = false } = {}) {
  memoryKey = key || "";
  for (const store of stores()) {
    try {
      store.removeItem(KEY_STORAGE);
    } catch {
      // Nothing to remove.
    }
  }
  if (!key) return;
  try {
    (remember ? localStorage : sessionStorage).setItem(KEY_STORAGE, key);
  } catch {
    // Storage may be disabled; the key then lasts only until the next reload.
  }
}

export function buildUrl(path, params = {}) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === "") continue;
    url.searchParams.set(name, Array.isArray(value) ? value.join(",") : String(value));
  }
  return url.pathname + url.search;
}

// url -> {etag, data}; a 304 answer reuses the body the ETag belongs to.
const etagCache = new Map();
const listeners = new Set();

export const connection = {
  state: "connecting", // connecting | live | unreachable | auth
  lastOk: null,
  failedSince: null,
  message: "",
};

export function onConnection(fn) {
  listeners.add(fn);
}

function setConnection(state, message = "") {
  const changed = connection.state !== state || connection.message !== message;
  if (state === "live") {
    connection.lastOk = new Date();
    connection.failedSince = null;
  } else if (connection.failedSince === null) {
    connection.failedSince = new Date();
  }
  connection.state = state;
  connection.message = message;
  for (const fn of listeners) fn(connection, changed);
}

async function parseBody(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { detail: text.slice(0, 200) };
  }
}

/**
 * GET a JSON resource. Resolves to {data, status, notModified, etag}. 404 and other 4xx reject
 * with ApiError; no answer, a timeout or a 5xx rejects with Unreachable; 401/403 with
 * AuthRequired. `probe` requests do not change the connection state on a 4xx.
 */
export async function getJSON(path, params = {}, { signal } = {}) {
  const url = buildUrl(path, params);
  const headers = { Accept: "application/json" };
  const key = getKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  const cached = etagCache.get(url);
  if (cached) headers["If-None-Match"] = cached.etag;

  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
  if (signal) signal.addEventListener("abort", () => controller.abort(), { once: true });
  let response;
  try {
    response = await fetch(url, { headers, cache: "no-store", signal: controller.signal });
  } catch (err) {
    if (signal && signal.aborted) throw err;
    const why = controller.signal.aborted ? `no answer within ${TIMEOUT_MS / 1000} s` : "no answer";
    setConnection("unreachable", why);
    throw new Unreachable(why);
  } finally {
    clearTimeout(timer);
  }

  if (response.status === 304 && cached) {
    setConnection("live");
    return { data: cached.data, status: 304, notModified: true, etag: cached.etag };
  }
  const body = await parseBody(response);
  if (response.ok) {
    const etag = response.headers.get("ETag");
    if (etag) {
      etagCache.delete(url);
      etagCache.set(url, { etag, data: body });
      // Relative time windows make new URLs every minute; keep only the recent ones.
      while (etagCache.size > ETAG_CACHE_SIZE) etagCache.delete(etagCache.keys().next().value);
    }
    setConnection("live");
    return { data: body, status: response.status, notModified: false, etag };
  }
  if (response.status === 401 || response.status === 403) {
    // A refused key is dropped, so that a reload asks again instead of sending it forever.
    const rejectedKey = response.status === 401 && Boolean(key);
    if (rejectedKey && getKey() === key) setKey("");
    setConnection("auth", response.status === 403 ? "this key may not read"
      : rejectedKey ? "the key was not accepted" : "");
    throw new AuthRequired(response.status, body, { rejectedKey });
  }
  if (response.status >= 500) {
    const why = response.status === 503
      ? "the API answers but cannot reach its database (503)"
      : `the API failed (${response.status})`;
    setConnection("unreachable", why);
    throw new Unreachable(why, response.status);
  }
  // A 4xx is an answer: the server is up, the request (or the route) is wrong.
  setConnection("live");
  throw new ApiError(response.status, body);
}

/**
 * True when GET `path` is served: any answer but 404/405 from the router, or, with
 * `okOnly`, only a successful one (for a path that another route would also match).
 */
export async function probe(path, params = {}, { okOnly = false } = {}) {
  try {
    await getJSON(path, params);
    return true;
  } catch (err) {
    if (err instanceof ApiError) return !okOnly && err.status !== 404 && err.status !== 405;
    throw err;
  }
}
