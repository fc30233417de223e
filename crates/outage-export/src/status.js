// The status page's script (served as /status.js; the page's CSP allows no
// inline script): fetches /api/status every second and renders it.
"use strict";
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));
const hhmm = t => t ? esc(t.slice(11, 16)) : "";

function incidentHtml(i) {
  const kind = i.scope === "global" ? "global" : "region";
  const where = i.scope === "global" ? "worldwide" : esc(i.region);
  const spread = (i.regions || []).map(r => `<span>${esc(r.region)} ${hhmm(r.started_at)}</span>`).join("");
  return `<div class="incident" data-id="${esc(i.id)}" data-scope="${kind}">
    <span class="badge ${kind}">${kind === "global" ? "GLOBAL" : "REGION"}</span>
    <b>${esc(i.service)}</b> ${where} · since ${hhmm(i.started_at)} · peak ${Number(i.peak_ratio).toFixed(1)}×
    ${i.resolved_at ? ` · resolved ${hhmm(i.resolved_at)}` : ""}
    ${spread ? `<div class="spread">${spread}</div>` : ""}</div>`;
}

function chart(history) {
  if (!history.length) return '<p class="empty">no windows yet</p>';
  const W = 600, H = 140, pad = 6;
  const max = Math.max(1, ...history.map(h => Math.max(h[1], h[2])));
  const x = i => pad + (W - 2 * pad) * (history.length === 1 ? 0 : i / (history.length - 1));
  const y = v => H - pad - (H - 2 * pad) * v / max;
  const line = k => history.map((h, i) => `${x(i).toFixed(1)},${y(h[k]).toFixed(1)}`).join(" ");
  return `<svg viewBox="0 0 ${W} ${H}" preserveAspectRatio="none">
    <polyline fill="none" stroke="#8a96a3" stroke-dasharray="6 4" stroke-width="1.5" points="${line(2)}"/>
    <polyline fill="none" stroke="#58a6ff" stroke-width="2" points="${line(1)}"/></svg>`;
}

function render(s) {
  document.getElementById("clock").textContent = s.clock || "–";
  const active = s.active_incidents || [];
  active.sort((a, b) => (a.scope === "global" ? -1 : 1) - (b.scope === "global" ? -1 : 1));
  document.getElementById("incidents").innerHTML = active.length ? active.map(incidentHtml).join("") : '<p class="empty">none</p>';
  const recent = s.recent_incidents || [];
  document.getElementById("recent").innerHTML = recent.length ? recent.slice(0, 15).map(incidentHtml).join("") : '<p class="empty">none</p>';
  const services = s.services || [];
  document.getElementById("services").innerHTML = services.length ? `<table><tr><th>service</th><th>status</th><th class="num">regions in outage</th></tr>` +
    services.map(v => `<tr><td>${esc(v.service)}</td><td>${v.global_incident ? '<span class="badge global">GLOBAL OUTAGE</span>' : v.regions_in_outage ? '<span class="badge region">REGIONAL</span>' : '<span class="badge ok">OK</span>'}</td><td class="num">${v.regions_in_outage}</td></tr>`).join("") + "</table>" : '<p class="empty">no data yet</p>';
  document.getElementById("charts").innerHTML = services.map(v => `<div><b>${esc(v.service)}</b>${chart(v.history || [])}</div>`).join("");
  const order = {outage: 0, pending: 1, normal: 2};
  const rows = services.flatMap(v => v.regions.map(r => ({service: v.service, ...r})));
  rows.sort((a, b) => order[a.state] - order[b.state] || b.observed - a.observed);
  document.getElementById("regions").innerHTML = `<table id="region-table"><tr><th>service</th><th>region</th><th>state</th><th class="num">reports</th><th class="num">expected</th><th class="num">surprise</th></tr>` +
    rows.slice(0, 40).map(r => `<tr data-region="${esc(r.region)}"><td>${esc(r.service)}</td><td>${esc(r.region)}</td><td class="state ${esc(r.state)}">${esc(r.state)}</td><td class="num">${r.observed}</td><td class="num">${r.expected}</td><td class="num">${r.surprise}</td></tr>`).join("") + "</table>";
}

async function refresh() {
  try {
    const r = await fetch("/api/status", {cache: "no-store"});
    render(await r.json());
    document.getElementById("status").textContent = "live";
  } catch (e) {
    document.getElementById("status").textContent = "disconnected (retrying)";
  }
}
refresh();
setInterval(refresh, 1000);
