// Small DOM helpers: build elements without innerHTML, so API data is never parsed as markup.

export function h(tag, attrs = {}, ...children) {
  const svg = tag.startsWith("svg:");
  const el = svg
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.setAttribute("class", value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function replace(el, ...children) {
  clear(el);
  return append(el, children);
}

/**
 * Run `rebuild()` (which replaces `container`'s content) and give the keyboard focus back
 * to the equivalent element afterwards, so a refresh never throws a keyboard user out.
 */
export function keepingFocus(container, rebuild) {
  const active = document.activeElement;
  let selector = null;
  if (active && container.contains(active)) {
    if (active.dataset && active.dataset.sortKey) selector = `[data-sort-key="${CSS.escape(active.dataset.sortKey)}"]`;
    else if (active.getAttribute("href")) selector = `[href="${CSS.escape(active.getAttribute("href"))}"]`;
    else if (active.id) selector = `#${CSS.escape(active.id)}`;
  }
  rebuild();
  if (selector) container.querySelector(selector)?.focus();
}
