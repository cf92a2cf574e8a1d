// Shipboard's only script: local times, confirmations, live log tail, self-refresh.
"use strict";

function localTimes(root) {
  for (const el of (root || document).querySelectorAll("time[datetime]")) {
    const d = new Date(el.getAttribute("datetime"));
    if (!isNaN(d)) {
      el.textContent = d.toLocaleString(undefined, {
        year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
      });
      el.title = el.getAttribute("datetime") + " (UTC: " + d.toISOString() + ")";
    }
  }
}

function confirmations() {
  document.addEventListener("submit", (event) => {
    const message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  });
}

function selfRefresh() {
  const el = document.querySelector("[data-refresh]");
  if (!el) return;
  const seconds = Number(el.getAttribute("data-refresh")) || 30;
  setTimeout(() => { if (document.visibilityState === "visible") location.reload(); else selfRefresh(); },
             seconds * 1000);
}

function logTail() {
  const box = document.getElementById("log");
  if (!box || !window.EventSource) return;
  const url = box.getAttribute("data-stream");
  const filter = document.getElementById("log-level");
  const status = document.getElementById("live-status");
  const order = { debug: 0, info: 1, warn: 2, error: 3 };
  let follow = true;
  box.addEventListener("scroll", () => {
    // Auto-scroll stops when the reader scrolls up, and resumes at the bottom.
    follow = box.scrollTop + box.clientHeight >= box.scrollHeight - 8;
  });
  const visible = (line) => !filter || order[line.dataset.level] >= order[filter.value];
  if (filter) {
    filter.addEventListener("change", () => {
      for (const line of box.children) line.hidden = !visible(line);
    });
  }
  const seen = new Set(Array.from(box.children, (el) => el.dataset.id));
  const source = new EventSource(url);
  source.addEventListener("log", (event) => {
    const item = JSON.parse(event.data);
    if (seen.has(item.id)) return;
    seen.add(item.id);
    const line = document.createElement("div");
    line.className = "line-" + item.level;
    line.dataset.level = item.level;
    line.dataset.id = item.id;
    line.textContent = (item.timestamp || "").slice(11, 19) + " " + item.level.toUpperCase().padEnd(5) +
      " " + (item.source ? "[" + item.source + "] " : "") + item.message;
    line.hidden = !visible(line);
    box.appendChild(line);
    if (follow) box.scrollTop = box.scrollHeight;
  });
  source.addEventListener("end", (event) => {
    source.close();
    let final = "";
    try { final = JSON.parse(event.data).status || ""; } catch (e) { final = ""; }
    if (status) status.textContent = final ? "finished: " + final : "finished";
    const badge = document.getElementById("deployment-status");
    if (badge && final) { badge.textContent = final; badge.className = "status status-" + final; }
    // Stages, times and buttons changed too: show them, once, for a deployment seen running.
    if (box.dataset.running === "1") setTimeout(() => location.reload(), 1500);
  });
  source.onerror = () => { if (status) status.textContent = "reconnecting…"; };
  source.onopen = () => { if (status) status.textContent = "live"; };
  box.scrollTop = box.scrollHeight;
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes();
  confirmations();
  selfRefresh();
  logTail();
});
