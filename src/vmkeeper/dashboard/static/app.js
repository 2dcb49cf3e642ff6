// vmkeeper dashboard: the overview's polling and an operation's live output. No inline script
// anywhere (the CSP forbids it); everything hangs off data- attributes.
"use strict";

function poll(box) {
  const url = box.dataset.poll;
  const every = Math.min(5, Number(box.dataset.pollS || 4)) * 1000;
  const refresh = () => {
    fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then((r) => (r.ok ? r.text() : Promise.reject(new Error(String(r.status)))))
      .then((html) => { box.innerHTML = html; box.dataset.refreshed = String(Date.now()); })
      .catch(() => { box.dataset.stale = "1"; });
  };
  setInterval(refresh, every);
}

function stream(pre) {
  const state = document.getElementById("op-state");
  const result = document.getElementById("op-result");
  const source = new EventSource(pre.dataset.events, { withCredentials: true });
  const line = (text) => { pre.textContent += text + "\n"; };
  source.onmessage = (event) => {
    let data;
    try { data = JSON.parse(event.data); } catch (e) { line(event.data); return; }
    if (data.message || data.line) line(data.message || data.line);
    if (data.state) state.textContent = data.state;
    if (data.result || data.finished) {
      result.textContent = JSON.stringify(data.result || data, null, 1);
      result.className = data.ok === false || data.state === "failed" ? "bad" : "ok";
      source.close();
    }
  };
  source.onerror = () => { state.textContent = "the event stream closed"; source.close(); };
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-poll]").forEach(poll);
  document.querySelectorAll("[data-events]").forEach(stream);
});
