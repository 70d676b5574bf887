// Entry point: hash routing, feature detection, polling, the connection banner and the key dialog.

import {
  AuthRequired, Unreachable, connection, getKey, keyRemembered, onConnection, probe, setKey,
} from "./api.js";
import { fmtClock } from "./format.js";
import { OverviewView } from "./overview.js";
import { RunDetailView, RunsView } from "./runs.js";
import { ErrorsView } from "./errors.js";
import { VersionsView } from "./versions.js";
import { h, replace } from "./dom.js";

// The default refresh period; a view may ask for another one (see `pollMs` below).
export const POLL_MS = 5000;

const main = document.getElementById("main");
const banner = document.getElementById("banner");
const connEl = document.getElementById("conn");
const connText = document.getElementById("conn-text");
const keyDialog = document.getElementById("key-dialog");
const forgetKey = document.getElementById("forget-key");

const features = { timeseries: false, extraction: false, extractionGroups: false };
let current = null; // {name, view, loadedAt}
let pollTimer = null;
let detected = false;

/** `#/runs/ID?layer_name=x` → {parts: ["runs", "ID"], params: URLSearchParams}. */
export function parseHash() {
  const raw = window.location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(query) };
}

export function hashFor(parts, params) {
  const path = parts.map(encodeURIComponent).join("/");
  const query = params ? new URLSearchParams(
    Object.entries(params).filter(([, v]) => v !== null && v !== undefined && v !== ""),
  ).toString() : "";
  return `#/${path}${query ? `?${query}` : ""}`;
}

const ctx = {
  features,
  navigate(parts, params, { replace: replaceEntry = false } = {}) {
    const target = hashFor(parts, params);
    if (target === window.location.hash) return;
    if (replaceEntry) history.replaceState(null, "", target);
    else window.location.hash = target;
    if (replaceEntry) route().catch(handleError);
  },
  report(err) {
    handleError(err);
  },
  /** A view put figures from the API on screen before its refresh finished. */
  shown(view) {
    if (current && current.view === view) markLoaded(current);
  },
  /** Ask for a refresh sooner or later than planned (after a view's state changed). */
  reschedule() {
    schedulePoll();
  },
};

/*
 * The views, one entry per section of the navigation. `resolve(parts, module)` returns
 * {name, make} for a path of its section, or null; `load` imports the section's module on
 * first use; `feature` hides the section unless the server offers its endpoint. A new
 * section is one more entry here and one link in index.html (`data-nav` = its `section`).
 */
const ROUTES = [
  {
    section: "overview",
    title: "Overview",
    resolve: () => ({ name: "overview", make: () => new OverviewView(ctx) }),
  },
  {
    section: "runs",
    title: "Runs",
    resolve: ([, id]) => (id
      ? { name: `run:${id}`, make: () => new RunDetailView(ctx, id) }
      : { name: "runs", make: () => new RunsView(ctx) }),
  },
  {
    section: "errors",
    title: "Errors",
    resolve: () => ({ name: "errors", make: () => new ErrorsView(ctx) }),
  },
  {
    section: "versions",
    title: "Versions",
    resolve: () => ({ name: "versions", make: () => new VersionsView(ctx) }),
  },
  {
    section: "extraction",
    title: "Extraction runs",
    feature: "extraction",
    load: () => import("./extraction.js"),
    resolve: ([, second, third, fourth], m) => {
      if (second === "compare" && third && fourth) {
        return { name: `xcompare:${third}:${fourth}`, make: () => new m.ExtractionCompareView(ctx, third, fourth) };
      }
      if (second === "groups") return { name: "xgroups", make: () => new m.ExtractionGroupsView(ctx) };
      if (second) return { name: `xrun:${second}`, make: () => new m.ExtractionDetailView(ctx, second) };
      return { name: "extraction", make: () => new m.ExtractionListView(ctx) };
    },
  },
];
const modules = new Map();

function routeFor(parts) {
  const section = parts[0] || "overview";
  return ROUTES.find((r) => r.section === section && (!r.feature || features[r.feature])) || null;
}

async function resolveView(parts) {
  const entry = routeFor(parts);
  if (!entry) return null;
  let module = null;
  if (entry.load) {
    if (!modules.has(entry.section)) modules.set(entry.section, await entry.load());
    module = modules.get(entry.section);
  }
  return entry.resolve(parts, module);
}

function markNav(parts) {
  const section = parts[0] || "overview";
  const entry = routeFor(parts);
  document.title = `${entry ? entry.title : "Not found"} · runwatch`;
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

/**
 * Every view's `refresh()` goes through here, so the page knows when the view last showed
 * data from the API (for the banner) without each view having to say so.
 */
function tracked(entry) {
  const refresh = entry.view.refresh.bind(entry.view);
  entry.view.refresh = async (...args) => {
    const result = await refresh(...args);
    if (current === entry) markLoaded(entry);
    return result;
  };
  return entry;
}

function markLoaded(entry) {
  const first = !entry.loadedAt;
  entry.loadedAt = new Date();
  // The first data sets the view's own pace (it may not need polling at all).
  if (first) schedulePoll();
}

async function route() {
  if (!detected) return;
  const { parts, params } = parseHash();
  markNav(parts);
  const found = await resolveView(parts);
  if (!found) {
    if (current) current.view.unmount?.();
    current = null;
    replace(main, h("section", { class: "view" },
      h("h1", {}, "Not found"),
      h("p", {}, "There is no such view. ", h("a", { href: "#/overview" }, "Go to the overview"), ".")));
    return;
  }
  if (current && current.name === found.name && current.view.update) {
    current.view.update(params);
  } else {
    const previous = current;
    if (previous) previous.view.unmount?.();
    const view = found.make();
    current = tracked({ name: found.name, view, loadedAt: null });
    replace(main, view.el);
    view.update(params);
    // A new view is announced like a new page: focus goes to its content.
    if (previous) {
      main.focus({ preventScroll: true });
      window.scrollTo(0, 0);
    }
  }
  renderConnection(connection);
  schedulePoll();
}

/*
 * How long until the current view refreshes: its own `pollMs()` (null = nothing it shows
 * can change), else POLL_MS. A view with no data yet, or an API that is away, is retried
 * every POLL_MS whatever the view says.
 */
function nextPollMs() {
  if (!current || !current.view.refresh) return null;
  if (!current.loadedAt || connection.state === "unreachable") return POLL_MS;
  return current.view.pollMs ? current.view.pollMs() : POLL_MS;
}

function schedulePoll() {
  clearTimeout(pollTimer);
  const ms = nextPollMs();
  if (ms !== null && ms !== undefined) pollTimer = setTimeout(poll, ms);
}

async function poll() {
  if (current && current.view.refresh && !document.hidden && connection.state !== "auth") {
    try {
      await current.view.refresh();
    } catch (err) {
      handleError(err);
    }
  }
  schedulePoll();
}

function handleError(err) {
  if (err instanceof AuthRequired) {
    askForKey(err.status === 403
      ? "This key is not allowed to read. Use a key with the read scope."
      : err.rejectedKey ? "The server did not accept this key." : "");
    return;
  }
  if (err && err.name === "AbortError") return;
  // Unreachable errors are shown by the connection banner; anything else is a bug
  // in a view, which must not stop polling.
  if (!(err instanceof Unreachable)) console.error(err);
}

function askForKey(message) {
  const errorEl = document.getElementById("key-error");
  errorEl.hidden = !message;
  errorEl.textContent = message;
  forgetKey.hidden = !getKey();
  if (!keyDialog.open) keyDialog.showModal();
  document.getElementById("key-input").focus();
}

keyDialog.addEventListener("close", () => {
  const input = document.getElementById("key-input");
  const remember = document.getElementById("key-remember");
  const value = input.value.trim();
  if (!value) return;
  setKey(value, { remember: remember.checked });
  input.value = "";
  forgetKey.hidden = false;
  start();
});

forgetKey.addEventListener("click", () => {
  setKey("");
  forgetKey.hidden = true;
  window.location.reload();
});

// The skip link moves focus to the content without touching the address (which holds the view).
document.querySelector(".skip-link").addEventListener("click", (ev) => {
  ev.preventDefault();
  main.focus();
  main.scrollIntoView();
});

function renderConnection(state) {
  connEl.dataset.state = state.state;
  const last = state.lastOk ? fmtClock(state.lastOk) : null;
  if (state.state === "live") {
    connText.textContent = `Live · refreshed ${last}`;
    banner.hidden = true;
    document.body.classList.remove("is-stale");
  } else if (state.state === "unreachable") {
    // Only figures the current view actually shows are "from" a time.
    const shownAt = current && current.loadedAt ? fmtClock(current.loadedAt) : null;
    connText.textContent = `API unreachable since ${fmtClock(state.failedSince)}`;
    banner.hidden = false;
    replace(banner,
      h("strong", {}, "The runwatch API is unreachable"),
      ` (${state.message}). `,
      shownAt
        ? `The figures below are from ${shownAt} and may be out of date. `
        : "Nothing could be loaded for this view yet. ",
      `Retrying every ${POLL_MS / 1000} s.`);
    document.body.classList.add("is-stale");
  } else if (state.state === "auth") {
    connText.textContent = "API key needed";
    banner.hidden = false;
    replace(banner, h("strong", {}, "An API key is needed"),
      state.message ? ` (${state.message}). ` : ". ",
      h("button", { type: "button", class: "linklike", onclick: () => askForKey("") }, "Enter a key"));
    document.body.classList.add("is-stale");
  }
}

onConnection(renderConnection);

async function detectFeatures() {
  // Each section appears only when the server offers its endpoint (404 = not offered).
  const [timeseries, extraction] = await Promise.all([
    probe("/runs/stats/timeseries", { days: 1, bucket: "hour" }),
    probe("/extraction-runs", { limit: 1 }),
  ]);
  features.timeseries = timeseries;
  features.extraction = extraction;
  // A valid question (two prompts no run has), so that a server that has the endpoint answers
  // 200 rather than 422, which the browser would log as an error. Only a 200 counts: on a
  // server without it, the path is taken for a run id.
  features.extractionGroups = extraction && (await probe("/extraction-runs/compare", {
    a_prompt_id: "runwatch-probe-a", b_prompt_id: "runwatch-probe-b", document_name: "runwatch-probe",
  }, { okOnly: true }));
  for (const el of document.querySelectorAll("[data-feature]")) {
    el.hidden = !features[el.dataset.feature];
  }
  document.body.dataset.features = Object.keys(features).filter((k) => features[k]).join(" ");
}

async function start() {
  forgetKey.hidden = !getKey();
  document.getElementById("key-remember").checked = keyRemembered();
  try {
    await detectFeatures();
    detected = true;
    if (current) current.view.unmount?.();
    current = null;
    await route();
  } catch (err) {
    handleError(err);
    // Keep trying until the server answers; the banner says what is wrong.
    if (!(err instanceof AuthRequired)) setTimeout(start, POLL_MS);
  }
}

window.addEventListener("hashchange", () => {
  route().catch(handleError);
});
document.addEventListener("visibilitychange", () => {
  if (!document.hidden && nextPollMs() !== null) poll();
});

start();
