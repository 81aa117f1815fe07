/* circuitgraph viewer: draws the circuit data embedded in the page (see circuitgraph/viewer).
   No network: everything it needs is in the page. The view state lives in the URL hash.
   window.circuitView exposes the counts, the state and the timings (tests and benchmarks). */
(function () {
  "use strict";
  const t0 = performance.now();
  const data = JSON.parse(document.getElementById("circuit-data").textContent);
  const nodes = data.nodes;
  const edges = data.edges.map((e, i) => ({
    i, s: nodes[e[0]], t: nodes[e[1]], v: e[2], m: e[3], freq: e[4], extra: e[5] || null,
  }));
  const names = data.circuits.map((c) => c.name);
  const nCircuits = names.length;
  const mode = data.mode;
  const byId = new Map(nodes.map((n) => [n.id, n]));
  nodes.forEach((n, i) => { n.idx = i; });
  const KIND_FILL = { embed: "#d9d9d9", head: "#9ecae1", mlp: "#fdae6b", logits: "#a1d99b" };
  const QKV_FILL = { q: "#2171b5", k: "#238b45", v: "#cb181d" };
  const TWO = ["#2b83ba", "#d7191c"];
  const SHARED = "#7b3294";
  const SOME = "#9e9e9e";
  const fmt = (x) => (x === null || x === undefined ? "—" : Math.abs(x) >= 1e4 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(3) : (+x).toPrecision(4).replace(/\.?0+$/, ""));
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

  // --- membership regions (computed in Python from the set algebra: bit i = in circuit i) ---
  const bits = (m) => names.filter((_, i) => m & (1 << i));
  function region(m) {
    const inside = bits(m);
    if (nCircuits === 1) return names[0];
    if (inside.length === nCircuits) return "shared";
    if (inside.length === 1) return inside[0] + " only";
    return inside.join(" + ");
  }
  function regionColour(m) {
    const inside = bits(m);
    if (inside.length === nCircuits) return nCircuits === 1 ? null : SHARED;
    if (inside.length === 1) {
      const i = names.indexOf(inside[0]);
      return nCircuits === 2 ? TWO[i] : d3.schemeTableau10[i % 10];
    }
    return SOME;
  }

  // --- values: effect (edge pruning) or score (attribution) ---
  const valued = edges.filter((e) => e.v !== null && e.v !== undefined);
  const maxAbs = d3.max(valued, (e) => Math.abs(e.v)) || 1;
  const sortedAbs = valued.map((e) => Math.abs(e.v)).sort((a, b) => b - a); // descending
  const imps = nodes.filter((n) => n.imp !== undefined).map((n) => n.imp);
  const maxImp = d3.max(imps, (x) => Math.abs(x)) || 1;
  const taus = data.circuits.map((c) => (c.tau === undefined ? null : c.tau));
  const firstBit = (m) => { for (let i = 0; i < 31; i++) if (m & (1 << i)) return i; return 0; };

  function edgeColour(e) {
    if (mode === "compare") return regionColour(e.m);
    if (e.v === null || e.v === undefined) return "#9a9a9a";
    const t = Math.abs(e.v) / maxAbs;
    return e.v >= 0 ? d3.interpolateBlues(0.35 + 0.65 * t) : d3.interpolateReds(0.35 + 0.65 * t);
  }
  function edgeWidth(e) {
    if (e.v === null || e.v === undefined) return valued.length ? 0.8 : 0.6;
    return 0.6 + 4.4 * Math.abs(e.v) / maxAbs;
  }
  function nodeFill(n) {
    if (mode === "compare" && n.kind !== "embed" && n.kind !== "logits") return regionColour(n.m) || KIND_FILL[n.kind];
    if (n.kind === "qkv") return QKV_FILL[n.qkv];
    if (n.imp !== undefined) return d3.interpolateYlOrRd(0.12 + 0.78 * Math.max(0, n.imp) / maxImp);
    return KIND_FILL[n.kind];
  }
  const opacityOf = (x) => (x === undefined || x === null ? 1 : 0.2 + 0.8 * x);

  // --- view state (kept in the URL hash) ---
  const state = { sm: "threshold", t: 0, k: valued.length, head: true, mlp: true, qkv: true, q: "", sel: null, lvl: nCircuits, z: null };
  const slidable = valued.length ? "edges" : imps.length ? "nodes" : null;
  const sliderValues = slidable === "edges" ? sortedAbs : imps.map(Math.abs).sort((a, b) => b - a);
  if (slidable === "nodes") state.k = sliderValues.length;

  // --- drawing ---
  const svg = d3.select("#canvas");
  const viewport = svg.append("g").attr("id", "viewport");
  const axis = viewport.append("g").attr("class", "axis");
  const edgeLayer = viewport.append("g").attr("class", "edges");
  const nodeLayer = viewport.append("g").attr("class", "nodes");
  const BOX = { head: [44, 20], mlp: [44, 20], embed: [90, 22], logits: [90, 22] };
  const owners = new Map(nodes.filter((n) => n.kind === "qkv" && n.head !== undefined && n.head !== null)
    .map((n) => [n.idx, byId.get(n.id.replace(/\.[qkv](@\d+)?$/, "$1")) || null]));
  const portOf = (n) => owners.get(n.idx) || null; // a head's own q/k/v input -> the head

  function anchor(n, top) {
    if (n.kind === "qkv") {
      if (!state.qkv) { const h = portOf(n); if (h) return [h.x, h.y + 10]; }
      return [n.x, n.y];
    }
    const half = (BOX[n.kind] || [0, 0])[1] / 2;
    return [n.x, top ? n.y - half : n.y + half];
  }
  function pathOf(e) {
    const [x1, y1] = anchor(e.s, true);
    const [x2, y2] = anchor(e.t, false);
    if (e.s.kind === "qkv") return `M${x1},${y1}L${x2},${y2}`;
    const my = (y1 + y2) / 2;
    return `M${x1},${y1}C${x1},${my} ${x2},${my} ${x2},${y2}`;
  }

  const layers = d3.groups(nodes.filter((n) => n.kind === "head" || n.kind === "embed" || n.kind === "logits"), (n) => n.layer);
  const minX = d3.min(nodes, (n) => n.x) - 60;
  axis.selectAll("text").data(layers).join("text")
    .attr("x", minX).attr("y", (d) => d[1][0].y + 3)
    .text((d) => (d[0] < 0 ? "" : d[0] >= data.model.n_layers ? "" : "L" + d[0]));

  // Edge paths are made the first time an edge is shown: a page of the full graph (70k edges)
  // starts with its largest edges and only builds the rest if asked to show them.
  const edgeEls = new Array(edges.length);
  const SVG_NS = "http://www.w3.org/2000/svg";
  function makeEdge(i) {
    const e = edges[i];
    const el = document.createElementNS(SVG_NS, "path");
    el.setAttribute("class", "edge" + (e.s.kind === "qkv" ? " internal" : ""));
    el.setAttribute("d", pathOf(e));
    el.setAttribute("stroke", edgeColour(e));
    el.setAttribute("stroke-width", edgeWidth(e));
    el.setAttribute("stroke-opacity", (e.v === null || e.v === undefined) && !valued.length ? 0.35 : 0.8 * opacityOf(e.freq));
    el.dataset.s = e.s.id; el.dataset.t = e.t.id; el.dataset.i = String(i); el.dataset.region = region(e.m);
    edgeLayer.node().appendChild(el);
    edgeEls[i] = el;
    return el;
  }
  const reroute = () => edgeEls.forEach((el, i) => el.setAttribute("d", pathOf(edges[i])));

  const nodeSel = nodeLayer.selectAll("g").data(nodes).join("g")
    .attr("class", (n) => "node kind-" + n.kind)
    .attr("data-id", (n) => n.id)
    .attr("data-region", (n) => region(n.m))
    .attr("transform", (n) => `translate(${n.x},${n.y})`)
    .attr("opacity", (n) => opacityOf(n.freq));
  nodeSel.each(function (n) {
    const g = d3.select(this);
    if (n.kind === "qkv") {
      g.append("circle").attr("r", n.head === undefined || n.head === null ? 4.5 : 4).attr("fill", nodeFill(n))
        .attr("stroke", mode === "compare" ? regionColour(n.m) || "#333" : "#333");
      return;
    }
    const [w, h] = BOX[n.kind];
    g.append("rect").attr("x", -w / 2).attr("y", -h / 2).attr("width", w).attr("height", h).attr("rx", 4).attr("fill", nodeFill(n));
    g.append("text").text(n.pos === undefined ? n.id : n.id.split("@")[0]);
  });
  const nodeEls = nodeSel.nodes();

  if (data.model.positions) {
    const blocks = d3.groups(nodes.filter((n) => n.kind === "logits"), (n) => n.pos);
    axis.selectAll("text.pos").data(blocks).join("text").attr("class", "pos")
      .attr("x", (d) => d[1][0].x).attr("y", (d) => d[1][0].y - 24).attr("text-anchor", "middle")
      .text((d) => "position " + d[0]);
  }

  // --- state, kept in the URL hash ---

  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    if (params.has("sm")) state.sm = params.get("sm") === "topk" ? "topk" : "threshold";
    if (params.has("t")) state.t = +params.get("t") || 0;
    if (params.has("k")) state.k = Math.max(0, parseInt(params.get("k"), 10) || 0);
    if (params.has("hide")) { const h = params.get("hide").split(","); state.head = !h.includes("head"); state.mlp = !h.includes("mlp"); state.qkv = !h.includes("qkv"); }
    if (params.has("q")) state.q = params.get("q");
    if (params.has("sel")) state.sel = byId.has(params.get("sel")) ? params.get("sel") : null;
    if (params.has("lvl")) state.lvl = Math.min(nCircuits, Math.max(0, parseInt(params.get("lvl"), 10) || 0));
    const z = (params.get("z") || "").split(",").map(Number);
    state.z = z.length === 3 && z.every(Number.isFinite) && z[2] > 0 ? z : null;
  }
  function writeHash() {
    const p = new URLSearchParams();
    if (state.sm !== "threshold") p.set("sm", state.sm);
    if (state.sm === "threshold" && state.t) p.set("t", String(state.t));
    if (state.sm === "topk") p.set("k", String(state.k));
    const hidden = ["head", "mlp", "qkv"].filter((k) => !state[k]);
    if (hidden.length) p.set("hide", hidden.join(","));
    if (state.q) p.set("q", state.q);
    if (state.sel) p.set("sel", state.sel);
    if (mode === "levels" && state.lvl !== nCircuits) p.set("lvl", String(state.lvl));
    if (state.z) p.set("z", state.z.map((x) => +x.toFixed(3)).join(","));
    const hash = p.toString();
    const url = location.href.split("#")[0] + (hash ? "#" + hash : "");
    if (url !== location.href) history.replaceState(null, "", url);
  }

  // --- visibility ---
  const shown = new Uint8Array(edges.length); // no path exists yet: update() makes the shown ones
  const nodeShown = new Uint8Array(nodes.length).fill(1);
  function cutoff() {
    if (state.sm === "threshold") return state.t;
    const k = Math.min(state.k, sliderValues.length);
    return k === 0 ? Infinity : sliderValues[k - 1];
  }
  function kindVisible(n) {
    if (n.kind === "head") return state.head;
    if (n.kind === "mlp") return state.mlp;
    if (n.kind === "qkv") return state.qkv && (portOf(n) ? state.head : true);
    return true;
  }
  function update() {
    const cut = cutoff();
    const levelBit = mode === "levels" && state.lvl < nCircuits ? 1 << state.lvl : 0;
    nodes.forEach((n, i) => {
      let on = kindVisible(n) && (!levelBit || (n.m & levelBit) !== 0);
      if (on && slidable === "nodes" && n.imp !== undefined) on = Math.abs(n.imp) >= cut;
      if (nodeShown[i] !== +on) { nodeShown[i] = +on; nodeEls[i].style.display = on ? "" : "none"; }
    });
    let visible = 0;
    edges.forEach((e, i) => {
      let on = nodeShown[e.s.idx] === 1 && nodeShown[e.t.idx] === 1;
      if (!state.qkv && e.s.kind === "qkv") on = false; // internal edges fold into the head
      if (on && levelBit) on = (e.m & levelBit) !== 0;
      if (on && slidable === "edges" && e.v !== null && e.v !== undefined) on = Math.abs(e.v) >= cut;
      if (on && !state.qkv && e.t.kind === "qkv" && !portOf(e.t) && !state.head) on = false;
      if (shown[i] !== +on) {
        shown[i] = +on;
        if (edgeEls[i]) edgeEls[i].style.display = on ? "" : "none";
        else if (on) makeEdge(i);
      }
      visible += on;
    });
    highlight();
    sliderLabel();
    counts(visible);
    curveMarker();
    writeHash();
  }

  // --- selection: ancestors and descendants over the visible edges ---
  function highlight() {
    const terms = state.q.split(/[\s,]+/).filter(Boolean);
    nodeEls.forEach((el, i) => setFlag(nodeFlags, el, i, MATCH, terms.length > 0 && terms.some((t) => nodes[i].id.includes(t)), "match"));
    const lit = new Set(), litEdges = new Set();
    if (state.sel && byId.has(state.sel)) {
      const start = byId.get(state.sel).idx;
      for (const dir of ["up", "down"]) {
        const stack = [start];
        const seen = new Set([start]);
        while (stack.length) {
          const cur = stack.pop();
          lit.add(cur);
          for (const e of (dir === "up" ? incoming[cur] : outgoing[cur])) {
            if (!shown[e.i]) continue;
            litEdges.add(e.i);
            const next = dir === "up" ? e.s.idx : e.t.idx;
            if (!seen.has(next)) { seen.add(next); stack.push(next); }
          }
        }
      }
    }
    const active = state.sel !== null || terms.length > 0;
    const matched = new Set(nodes.filter((n) => terms.some((t) => n.id.includes(t))).map((n) => n.idx));
    // class changes only where they differ from the last call: a big graph has 70k edges
    nodeEls.forEach((el, i) => {
      const on = state.sel ? lit.has(i) : matched.has(i);
      setFlag(nodeFlags, el, i, LIT, state.sel !== null && lit.has(i), "lit");
      setFlag(nodeFlags, el, i, SELECTED, nodes[i].id === state.sel, "selected");
      setFlag(nodeFlags, el, i, DIM, active && !on, "dim");
    });
    edgeEls.forEach((el, i) => {
      const on = state.sel ? litEdges.has(i) : matched.has(edges[i].s.idx) || matched.has(edges[i].t.idx);
      setFlag(edgeFlags, el, i, LIT, state.sel !== null && litEdges.has(i), "lit");
      setFlag(edgeFlags, el, i, DIM, active && !on, "dim");
    });
  }
  const LIT = 1, DIM = 2, SELECTED = 4, MATCH = 8;
  const nodeFlags = new Uint8Array(nodes.length), edgeFlags = new Uint8Array(edges.length);
  function setFlag(flags, el, i, bit, on, name) {
    if (!el || ((flags[i] & bit) !== 0) === on) return; // a path not made yet starts clear
    flags[i] ^= bit;
    el.classList.toggle(name, on);
  }
  const incoming = nodes.map(() => []), outgoing = nodes.map(() => []);
  edges.forEach((e) => { incoming[e.t.idx].push(e); outgoing[e.s.idx].push(e); });

  // --- controls ---
  const slider = document.getElementById("slider");
  const sliderMode = document.getElementById("slider-mode");
  const levelInput = document.getElementById("level");
  const STEPS = 1000;
  const logMin = sliderValues.length ? Math.log10(Math.max(1e-9, Math.abs(sliderValues[sliderValues.length - 1]) || 1e-9)) : 0;
  const logMax = sliderValues.length ? Math.log10(Math.max(1e-9, Math.abs(sliderValues[0]))) : 0;
  // threshold slider: 0 = show all, then log-spaced |values| up to the largest
  const toThreshold = (pos) => (pos <= 0 ? 0 : Math.pow(10, logMin + (logMax - logMin) * (pos / STEPS)));
  const fromThreshold = (t) => (t <= 0 ? 0 : Math.round(STEPS * (Math.log10(t) - logMin) / (logMax - logMin || 1)));
  function syncControls() {
    sliderMode.value = state.sm;
    if (state.sm === "topk") { slider.max = String(sliderValues.length); slider.value = String(Math.min(state.k, sliderValues.length)); }
    else { slider.max = String(STEPS); slider.value = String(Math.max(0, Math.min(STEPS, fromThreshold(state.t)))); }
    for (const k of ["head", "mlp", "qkv"]) document.getElementById("show-" + k).checked = state[k];
    document.getElementById("search").value = state.q;
    levelInput.value = String(state.lvl);
  }
  function sliderLabel() {
    const what = slidable === "nodes" ? "importance" : data.value_kind || "value";
    document.getElementById("slider-label").textContent = state.sm === "topk"
      ? `${Math.min(state.k, sliderValues.length)} of ${sliderValues.length}` : `${fmt(state.t)} (${what})`;
    if (mode === "levels") document.getElementById("level-label").textContent = state.lvl >= nCircuits ? "all (opacity: frequency)" : names[state.lvl];
  }
  if (!slidable) document.getElementById("slider-group").hidden = true;
  slider.addEventListener("input", () => {
    if (state.sm === "topk") state.k = +slider.value; else state.t = toThreshold(+slider.value);
    update();
  });
  sliderMode.addEventListener("change", () => { state.sm = sliderMode.value; syncControls(); update(); });
  for (const k of ["head", "mlp", "qkv"]) {
    document.getElementById("show-" + k).addEventListener("change", (ev) => {
      state[k] = ev.target.checked;
      if (k === "qkv") reroute();
      update();
    });
  }
  document.getElementById("search").addEventListener("input", (ev) => { state.q = ev.target.value.trim(); update(); });
  document.getElementById("reset").addEventListener("click", () => {
    Object.assign(state, { t: 0, k: sliderValues.length, head: true, mlp: true, qkv: true, q: "", sel: null, lvl: nCircuits, sm: "threshold", z: null });
    bigStart(); reroute(); syncControls(); update(); fit();
  });
  if (mode === "levels") {
    document.getElementById("level-group").hidden = false;
    document.getElementById("level-name").textContent = data.level_name;
    levelInput.max = String(nCircuits);
    levelInput.addEventListener("input", () => { state.lvl = +levelInput.value; update(); provenance(); });
  }
  nodeSel.on("click", (ev, n) => { ev.stopPropagation(); state.sel = state.sel === n.id ? null : n.id; update(); });
  svg.on("click", () => { if (state.sel) { state.sel = null; update(); } });
  window.addEventListener("hashchange", () => { readHash(); reroute(); syncControls(); update(); provenance(); fit(); });

  // --- hover cards ---
  const card = document.getElementById("card");
  const row = (k, v, cls) => `<tr><td>${esc(k)}</td><td${cls ? ` class="${cls}"` : ""}>${v}</td></tr>`;
  function nodeCard(n) {
    let html = `<b>${esc(n.id)}</b><table>` + row("kind", esc(n.kind === "qkv" ? n.qkv.toUpperCase() + " input" : n.kind));
    if (n.layer >= 0 && n.layer < data.model.n_layers) html += row("layer", n.layer);
    if (n.head !== undefined) html += row("head", n.head);
    if (n.group !== undefined) html += row("K/V group", n.group);
    if (n.pos !== undefined) html += row("position", n.pos);
    if (n.imp !== undefined) html += row("importance", `${fmt(n.imp)} <small>(score drop when removed)</small>`);
    if (n.without !== undefined) html += row("score without it", fmt(n.without));
    if (n.freq !== undefined) html += row("frequency", `${fmt(n.freq)} <small>(${mode === "levels" ? "share of levels" : "share of resamples"})</small>`);
    if (nCircuits > 1) html += row("in", esc(region(n.m)));
    if (n.extra) for (const [k, v] of Object.entries(n.extra)) html += row(k, esc(typeof v === "number" ? fmt(v) : JSON.stringify(v)));
    if (n.analyses) for (const [name, values] of Object.entries(n.analyses)) {
      html += `<tr><td colspan="2"><b>${esc(name)}</b></td></tr>`;
      for (const [k, v] of Object.entries(values)) html += row(k.replace(/_/g, " "), esc(typeof v === "number" ? fmt(v) : String(v)));
    }
    const deg = [incoming[n.idx].filter((e) => shown[e.i]).length, outgoing[n.idx].filter((e) => shown[e.i]).length];
    html += row("edges in / out", `${deg[0]} / ${deg[1]}`);
    if (valued.length) {
      const total = (list) => list.filter((e) => shown[e.i] && e.v !== null && e.v !== undefined).reduce((a, e) => a + Math.abs(e.v), 0);
      // a head's inputs arrive at its q/k/v ports
      const into = n.kind === "head" ? nodes.filter((p) => portOf(p) === n).flatMap((p) => incoming[p.idx]) : [];
      html += row(`Σ|${data.value_kind}| in / out`, `${fmt(total(incoming[n.idx].concat(into)))} / ${fmt(total(outgoing[n.idx]))}`);
    }
    return html + "</table>";
  }
  function edgeCard(e) {
    let html = `<b>${esc(e.s.id)} → ${esc(e.t.id)}</b><table>`;
    if (e.v !== null && e.v !== undefined) html += row(data.value_kind || "value", fmt(e.v));
    const tau = taus[firstBit(e.m)];
    if (tau !== null && e.v !== null && e.v !== undefined) {
      const margin = e.v - tau;
      html += row("tau", fmt(tau)) + row("margin to tau", fmt(margin));
      if (Math.abs(margin) <= data.tie) html += row("tie", `within ${data.tie.toExponential()} of tau`, "tie");
    }
    if (e.s.kind === "qkv") html += row("kind", "inside the head");
    if (e.freq !== undefined && e.freq !== null) html += row("frequency", fmt(e.freq));
    if (nCircuits > 1) html += row("in", esc(region(e.m)));
    if (e.extra) for (const [k, v] of Object.entries(e.extra)) html += row(k, esc(typeof v === "number" ? fmt(v) : JSON.stringify(v)));
    return html + "</table>";
  }
  function showCard(ev, html, id) {
    card.innerHTML = html;
    card.dataset.for = id;
    card.hidden = false;
    const x = Math.min(ev.clientX + 14, window.innerWidth - card.offsetWidth - 8);
    const y = Math.min(ev.clientY + 14, window.innerHeight - card.offsetHeight - 8);
    card.style.left = x + "px"; card.style.top = y + "px";
  }
  nodeSel.on("mouseenter", (ev, n) => showCard(ev, nodeCard(n), n.id)).on("mouseleave", () => { card.hidden = true; });
  edgeLayer.on("mouseover", (ev) => {
    const e = edges[+ev.target.dataset.i];
    if (e) showCard(ev, edgeCard(e), e.s.id + "->" + e.t.id);
  }).on("mouseout", () => { card.hidden = true; });

  // --- side panel: counts, legend, provenance, curve ---
  function counts(visible) {
    const nVisible = nodeShown.reduce((a, b) => a + b, 0);
    const el = document.getElementById("counts");
    el.dataset.nodes = String(nodes.length); el.dataset.edges = String(edges.length);
    el.dataset.visibleEdges = String(visible); el.dataset.visibleNodes = String(nVisible);
    el.innerHTML = `<b>${nodes.length}</b> nodes, <b>${edges.length}</b> edges` +
      (visible !== edges.length || nVisible !== nodes.length ? `<br>showing ${nVisible} nodes, ${visible} edges` : "");
  }
  function legend() {
    let html = "<h2>Legend</h2>";
    const sw = (c, label) => `<div><span class="swatch" style="background:${c}"></span>${esc(label)}</div>`;
    if (mode === "compare") {
      if (nCircuits === 2) html += sw(TWO[0], names[0] + " only") + sw(TWO[1], names[1] + " only") + sw(SHARED, "shared");
      else { names.forEach((n, i) => { html += sw(d3.schemeTableau10[i % 10], n + " only"); }); html += sw(SHARED, "in all") + sw(SOME, "in some"); }
    } else {
      html += sw(KIND_FILL.head, "head") + sw(KIND_FILL.mlp, "MLP") + sw(QKV_FILL.q, "Q input") + sw(QKV_FILL.k, "K input") + sw(QKV_FILL.v, "V input");
      if (imps.length) html += `<div><span class="ramp" style="background:linear-gradient(90deg,${d3.interpolateYlOrRd(0.12)},${d3.interpolateYlOrRd(0.9)})"></span> importance 0 – ${fmt(maxImp)}</div>`;
    }
    if (valued.length && mode !== "compare") html += `<div><span class="ramp" style="background:linear-gradient(90deg,${d3.interpolateReds(1)},${d3.interpolateReds(0.35)} 49%,${d3.interpolateBlues(0.35)} 51%,${d3.interpolateBlues(1)})"></span> ${esc(data.value_kind)} −${fmt(maxAbs)} … +${fmt(maxAbs)} (width: |${esc(data.value_kind)}|)</div>`;
    if (mode === "levels" || nodes.some((n) => n.freq !== undefined)) html += "<div>opacity: frequency</div>";
    document.getElementById("legend").innerHTML = html;
  }
  function provenance() {
    let html = "";
    // levels: the level shown (all: the first), not every level again
    const shownCircuits = mode === "levels" ? [data.circuits[Math.min(state.lvl, nCircuits - 1)]] : data.circuits;
    for (const c of shownCircuits) {
      html += `<h2>${esc(c.name)}</h2><table>` + row("level", esc(c.level)) + row("size", `${c.heads} heads, ${c.mlps} MLPs, ${c.n_edges} edges`);
      for (const [k, v] of Object.entries(c.facts)) {
        const shown = typeof v === "number" ? fmt(v) : Array.isArray(v) ? "[" + v.map((x) => (typeof x === "number" ? fmt(x) : esc(x))).join(", ") + "]" : esc(typeof v === "object" ? JSON.stringify(v) : v);
        html += row(k.replace("_", " "), shown);
      }
      html += "</table>";
    }
    document.getElementById("provenance").innerHTML = "<h2>Provenance</h2>" + html;
  }
  let curveMarker = () => {};
  if (data.curve && data.curve.length) {
    document.getElementById("curve-box").hidden = false;
    const c = d3.select("#curve"), W = 260, H = 140, m = { l: 34, r: 8, t: 8, b: 22 };
    const x = d3.scaleLog().domain(d3.extent(data.curve, (d) => Math.max(1, d[0]))).range([m.l, W - m.r]);
    const y = d3.scaleLinear().domain(d3.extent(data.curve, (d) => d[1])).nice().range([H - m.b, m.t]);
    c.append("g").attr("transform", `translate(0,${H - m.b})`).call(d3.axisBottom(x).ticks(3, "~s"));
    c.append("g").attr("transform", `translate(${m.l},0)`).call(d3.axisLeft(y).ticks(4));
    c.append("path").attr("fill", "none").attr("stroke", "#2171b5").attr("d", d3.line().x((d) => x(Math.max(1, d[0]))).y((d) => y(d[1]))(data.curve));
    const marker = c.append("line").attr("stroke", "#e6550d").attr("y1", m.t).attr("y2", H - m.b);
    curveMarker = () => {
      const k = state.sm === "topk" ? Math.min(state.k, sliderValues.length) : sliderValues.filter((v) => v >= state.t).length;
      marker.attr("x1", x(Math.max(1, k))).attr("x2", x(Math.max(1, k)));
    };
  }

  // --- zoom and export ---
  const zoom = d3.zoom().scaleExtent([0.05, 8])
    .on("zoom", (ev) => viewport.attr("transform", ev.transform))
    .on("end", (ev) => { if (ev.sourceEvent) { const t = ev.transform; state.z = [t.x, t.y, t.k]; writeHash(); } });
  svg.call(zoom).on("dblclick.zoom", null);
  function fit() {
    if (state.z) { svg.call(zoom.transform, d3.zoomIdentity.translate(state.z[0], state.z[1]).scale(state.z[2])); return; }
    const box = viewport.node().getBBox();
    const w = svg.node().clientWidth || 800, h = svg.node().clientHeight || 600;
    const whole = 0.95 * Math.min(w / (box.width || 1), h / (box.height || 1));
    // a deep model fits only when tiny: then show its top (logits) at a readable size
    const scale = Math.min(2, Math.max(whole, Math.min(0.6, 0.95 * w / (box.width || 1))));
    const y = scale * box.height <= h ? h / 2 - scale * (box.y + box.height / 2) : 10 - scale * box.y;
    svg.call(zoom.transform, d3.zoomIdentity.translate(w / 2 - scale * (box.x + box.width / 2), y).scale(scale));
  }
  function exportSVG() {
    const clone = svg.node().cloneNode(true);
    clone.querySelectorAll("[style*='display: none']").forEach((el) => el.remove());
    const style = document.createElementNS("http://www.w3.org/2000/svg", "style");
    style.textContent = Array.from(document.styleSheets[0].cssRules).map((r) => r.cssText).filter((t) => /^\.(node|edge|axis|dim|lit|cut)/.test(t)).join("\n");
    clone.insertBefore(style, clone.firstChild);
    const box = viewport.node().getBBox();
    clone.querySelector("#viewport").removeAttribute("transform");
    clone.setAttribute("viewBox", `${box.x - 10} ${box.y - 10} ${box.width + 20} ${box.height + 20}`);
    clone.setAttribute("width", String(Math.round(box.width + 20))); clone.setAttribute("height", String(Math.round(box.height + 20)));
    return new XMLSerializer().serializeToString(clone);
  }
  function download(blob, name) {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob); a.download = name;
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  }
  const fileStem = (data.title || "circuit").replace(/[^A-Za-z0-9._-]+/g, "-");
  document.getElementById("export-svg").addEventListener("click", () => download(new Blob([exportSVG()], { type: "image/svg+xml" }), fileStem + ".svg"));
  document.getElementById("export-png").addEventListener("click", () => {
    const text = exportSVG();
    const img = new Image();
    img.onload = () => {
      const canvas = document.createElement("canvas");
      canvas.width = img.width * 2; canvas.height = img.height * 2;
      const ctx = canvas.getContext("2d"); ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
      ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
      canvas.toBlob((blob) => download(blob, fileStem + ".png"));
    };
    img.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(text);
  });

  // --- start ---
  // A very large graph opens on its largest edges (every path costs the browser time)
  const BIG = 20000, FIRST = 5000;
  const bigStart = () => { if (slidable === "edges" && valued.length > BIG) Object.assign(state, { sm: "topk", k: FIRST }); };
  if (!/(^|&)(t|k|sm)=/.test(location.hash.slice(1))) bigStart();
  readHash();
  if (state.sel && !byId.has(state.sel)) state.sel = null;
  legend(); provenance(); syncControls(); update(); fit();
  window.addEventListener("resize", fit);
  const view = {
    ready: false, data, state, update, exportSVG, fit,
    timings: { script_ms: performance.now() - t0, first_render_ms: null },
    counts: () => ({ nodes: nodes.length, edges: edges.length, visibleNodes: nodeShown.reduce((a, b) => a + b, 0), visibleEdges: shown.reduce((a, b) => a + b, 0) }),
    visibleEdges: () => edges.filter((e) => shown[e.i]).map((e) => [e.s.id, e.t.id]),
    set: (changes) => {
      const qkv = state.qkv;
      Object.assign(state, changes);
      if (state.qkv !== qkv) reroute();
      syncControls(); update();
    },
  };
  window.circuitView = view;
  requestAnimationFrame(() => { view.timings.first_render_ms = performance.now(); view.ready = true; document.body.dataset.ready = "1"; });
})();
