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
  // The agent names its events (step, output, result): EventSource's onmessage sees none.
  const show = (event) => {
    let data;
    try { data = JSON.parse(event.data); } catch (e) { line(event.data); return; }
    const text = data.message || data.line || data.text;
    if (text) line((data.step ? data.step + ": " : "") + text);
    state.textContent = event.type === "result" ? "finished" : "running";
    if (event.type === "result") {
      result.textContent = (data.ok ? "verified: " : "failed: ") + JSON.stringify(data.result || data);
      result.className = data.ok ? "ok" : "bad";
      source.close();
    }
  };
  ["step", "output", "result", "message"].forEach((kind) => source.addEventListener(kind, show));
  source.onerror = () => {
    if (!result.textContent) state.textContent = "the event stream closed";
    source.close();
  };
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-poll]").forEach(poll);
  document.querySelectorAll("[data-events]").forEach(stream);
});
