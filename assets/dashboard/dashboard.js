// The Umbra dashboard: polls /api/status every second and draws it. No external resources.
"use strict";

const COLORS = { own: "#4a6ee0", relayed: "#e0894a", dht: "#3aa57a", seeding: "#b04ae0" };

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function text(id, value) { document.getElementById(id).textContent = value; }

function list(id, items) {
  const el = document.getElementById(id);
  el.replaceChildren(...items.map((t) => { const li = document.createElement("li"); li.textContent = t; return li; }));
}

function drawGraph(series) {
  const canvas = document.getElementById("graph");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 30;
  ctx.clearRect(0, 0, w, h);
  const names = Object.keys(COLORS);
  const len = Math.max(1, ...names.map((n) => series[n].length));
  const max = Math.max(1024, ...names.flatMap((n) => series[n]));
  ctx.strokeStyle = "#ddd"; ctx.fillStyle = "#666"; ctx.font = "11px sans-serif";
  for (let i = 0; i <= 4; i++) {
    const y = pad / 2 + (h - pad) * i / 4;
    ctx.beginPath(); ctx.moveTo(pad * 2, y); ctx.lineTo(w, y); ctx.stroke();
    ctx.fillText(bytes(max * (4 - i) / 4) + "/s", 0, y + 4);
  }
  for (const n of names) {
    const s = series[n];
    ctx.strokeStyle = COLORS[n]; ctx.lineWidth = 2; ctx.beginPath();
    s.forEach((v, i) => {
      const x = pad * 2 + (w - pad * 2) * (i + len - s.length) / Math.max(1, len - 1);
      const y = pad / 2 + (h - pad) * (1 - v / max);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
  }
}

function legend(totals) {
  const el = document.getElementById("legend");
  el.replaceChildren(...Object.keys(COLORS).map((n) => {
    const li = document.createElement("li");
    const sw = document.createElement("span");
    sw.style.background = COLORS[n];
    li.append(sw, `${n}: ${bytes(totals[n])} in all`);
    return li;
  }));
}

function render(s) {
  document.body.dataset.live = "yes";
  text("summary", `version ${s.version} · up ${s.uptime_secs} s · ${s.links} links` +
    (s.node_id ? ` · relay ${s.node_id}` : ""));
  list("roles", s.roles);
  text("tor", !s.tor ? "Guard links: direct (Tor first hop off)."
    : s.tor.state === "ready"
      ? `Guard links through Tor: ready, ${s.tor.links} link(s) opened, ${s.tor.retries} retried` +
        (s.tor.last_error ? ` (last error: ${s.tor.last_error})` : "") + "."
      : s.tor.state === "failed"
        ? `Tor first hop FAILED: ${s.tor.last_error}. Umbra does not connect directly.`
        : `Tor bootstrapping: ${s.tor.percent}% (${s.tor.message}).`);
  drawGraph(s.bandwidth.series);
  limits(s);
  legend(s.bandwidth.totals);
  text("circuit-summary", `${s.circuits.own.length} own circuits open; ${s.circuits.relayed} carried for others`);
  const body = document.querySelector("#circuits tbody");
  body.replaceChildren(...s.circuits.own.map((c) => {
    const tr = document.createElement("tr");
    for (const cell of [c.purpose, ...c.hops]) { const td = document.createElement("td"); td.textContent = cell; tr.append(td); }
    return tr;
  }));
  const st = s.storage;
  const pct = st.store_quota ? Math.min(100, 100 * st.store_used / st.store_quota) : 0;
  document.getElementById("store-bar").style.width = pct.toFixed(1) + "%";
  text("storage", `records: ${bytes(st.store_used)} of ${bytes(st.store_quota)} (${st.records} records) · ` +
    `gateway cache: ${bytes(st.cache_used)} of ${bytes(st.cache_quota)}`);
  text("serving-summary", s.serving.sites.length
    ? `Holding the manifests of ${s.serving.sites.length} sites for the network:`
    : "This node holds no site manifests for the network" + (s.roles.includes("relay") ? " yet." : " (readers do not store for others)."));
  list("serving", s.serving.sites.map((x) => `${x.address} (sequence ${x.seq})`));
  const d = s.directory;
  text("directory", `${d.relays} relays known, verified` +
    (d.last_sync_secs_ago === null ? " · no reconciliation yet" : ` · last reconciled ${d.last_sync_secs_ago} s ago`) +
    (d.learning ? " · still learning the relay set" : "") +
    ` · ${d.admitted} admitted, ${d.refused_bad + d.refused_caps} refused, ${d.expired} expired`);
  const eq = s.equivocations;
  document.getElementById("equivocations-box").classList.toggle("alarm", eq.length > 0);
  text("equivocations-summary", eq.length
    ? `${eq.length} proof(s) kept: these sites' keys signed two different manifests with one sequence. The first one seen stays in use.`
    : "No site was caught signing two versions with one sequence.");
  list("equivocations", eq.map((x) => `${x.site} (sequence ${x.seq}, seen as ${x.seen_as})`));
  const ws = s.writers;
  text("writers-summary", ws.length
    ? `${ws.length} site(s) read this run have writers (each site's /.umbra/writers page lists its conflicts):`
    : "No site read this run has writers.");
  list("writers", ws.map((x) => `${x.site}: roster ${x.roster}, the site key and ` +
    `${x.writers.length} writer(s) (` +
    x.writers.map((w) => w.key + (w.prefixes.includes("") ? "" : " under /" + w.prefixes.join(", /")) +
      (w.cutoff === null ? "" : ` revoked after ${w.cutoff}`)).join("; ") +
    `) · ${x.lines} lines merged, ${x.conflicts} conflict(s)` +
    (x.refused ? `, ${x.refused} refused` : "") +
    (x.branches.length ? ` · branches: ${x.branches.join(", ")}` : "")));
  const g = s.gateway;
  text("gateway", `port ${g.port} · ${g.requests} requests, ${g.errors} errors · ${bytes(g.bytes_out)} served · ` +
    `${g.site_circuits} site circuits open, ${g.circuits_built} built`);
}

// The previous status, to turn the limits' byte counters into rates.
let previous = null;

function limits(s) {
  const l = s.limits;
  const dt = previous ? Math.max(0.5, s.uptime_secs - previous.uptime_secs) : 1;
  const rate = (c, d) => previous ? (l.classes[c][d].bytes - previous.limits.classes[c][d].bytes) / dt : 0;
  const body = document.querySelector("#limits tbody");
  body.replaceChildren(...Object.keys(l.classes).map((c) => {
    const tr = document.createElement("tr");
    const lim = l.classes[c].out.limit;
    for (const cell of [c, bytes(rate(c, "in")) + "/s", bytes(rate(c, "out")) + "/s",
      lim === null ? "none" : bytes(lim) + "/s"]) {
      const td = document.createElement("td"); td.textContent = cell; tr.append(td);
    }
    return tr;
  }));
  text("limits-summary", `total: ${l.total.rate === null ? "no limit" : bytes(l.total.rate) + "/s"} each way · ` +
    `${l.held_cells} cells waiting (${bytes(l.memory.held_bytes)} of ${bytes(l.memory.limit)} memory) · ` +
    `circuits closed: ${l.closed_for_memory} for memory, ${l.closed_for_overrun} for overrunning their window`);
  const a = l.accounting;
  text("accounting", !a ? "No monthly quota." :
    `This period: ${bytes(Math.max(a.used_in, a.used_out))} of ${bytes(a.quota)} used, ` +
    `paced at ${bytes(a.pace_bytes_per_sec)}/s until ${new Date(a.period_end * 1000).toISOString().slice(0, 10)}.`);
  const h = l.handshakes;
  text("handshakes", !h ? "" :
    `CREATEs: ${h.answered} answered (longest wait ${h.max_wait_ms} ms), ${h.queued} waiting, ` +
    `${h.refused_overloaded} refused overloaded, ${h.refused_rate} refused over their source's rate · CPU budget ${l.cpu_percent}% of a core`);
  previous = s;
}

async function poll() {
  try {
    const r = await fetch("/api/status", { cache: "no-store" });
    if (r.ok) render(await r.json());
    else text("summary", `status API answered ${r.status}`);
  } catch (e) {
    text("summary", "The node is not answering: " + e);
  }
  setTimeout(poll, 1000);
}

poll();
