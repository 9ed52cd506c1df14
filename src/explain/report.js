// qkv explain report: reads the JSON in <script id="qkv-data">, draws the model view (layers x
// heads of small maps), the heatmap (canvas, one pixel block per entry, labels only when cells are
// large enough), the head view (lines between tokens on a virtualised canvas), "where did this
// come from" (a token's top source spans per layer) and the analyses; report_tabs.js adds a tab
// per section of the other methods. Two modes (docs/EXPLAIN.md, "Long contexts"):
//  - dense: every map in full (lower triangle when causal);
//  - rows: block summaries (mean attention between 64-token blocks) in the page, and each row's
//    top-k weights loaded on demand, in chunks, from <script> files beside the page (file://
//    allows those where fetch() is refused) or from text elements inside it.
// After drawing it writes counts into data-* attributes of <body> for the automated browser test.
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("qkv-data").textContent);
  const T = D.ids.length, NL = D.layers.length, NH = D.heads.length;
  const ROWS = D.mode === "rows";
  const body = document.body;
  let errors = 0;
  window.addEventListener("error", () => { errors++; body.dataset.errors = errors; });
  body.dataset.errors = 0;
  const $ = (id) => document.getElementById(id);

  // Maps: uint16 of sqrt(p) * 65535, little-endian, base64; lower triangle only when tri.
  function bytes(b64) {
    const bin = atob(b64);
    const u = new Uint8Array(bin.length);
    for (let i = 0; i < u.length; i++) u[i] = bin.charCodeAt(i);
    return u;
  }
  const decode = (b64) => { const b = bytes(b64); return new Uint16Array(b.buffer, 0, b.length >> 1); };
  const q2p = (q) => { const x = q / 65535; return x * x; };
  // Entry (i, j) of an n x n map stored by encode_map.
  function weight(m, i, j, n, tri) {
    if (tri && j > i) return 0;
    return q2p(m[tri ? (i * (i + 1)) / 2 + j : i * n + j]);
  }

  const visible = qkvRender.visible;
  const labels = D.tokens.map(visible);
  const label = (i) => labels[i];
  body.dataset.blankLabels = labels.filter((s) => s.trim() === "").length;

  // ---- Map data -------------------------------------------------------------------------------
  const maps = ROWS ? null : D.maps.map(decode);
  const rollout = ROWS ? null : decode(D.rollout);
  const B = ROWS ? D.block : 0, NB = ROWS ? Math.ceil(T / B) : 0;
  const blocks = ROWS ? D.blocks.map(decode) : null;

  // Rows mode: chunk c holds rows [c * per, ...) of every map: uint32 keys [maps, rows, k] then
  // uint16 weights [maps, rows, k]; key 0xffffffff pads.
  const chunks = new Map(), waiting = new Map();
  const PER = ROWS ? D.chunks.rows : 0, K = ROWS ? D.chunks.k : 0;
  function chunkArrived(c, b64) {
    const u = bytes(b64), nr = Math.min(PER, T - c * PER), cnt = NL * NH * nr * K;
    chunks.set(c, { nr, keys: new Uint32Array(u.buffer, 0, cnt), w: new Uint16Array(u.buffer, cnt * 4, cnt) });
    body.dataset.chunksLoaded = chunks.size;
    const cbs = waiting.get(c) || [];
    waiting.delete(c);
    cbs.forEach((f) => f());
  }
  window.qkvRows = chunkArrived;
  // Calls then() once chunk c is there (now, when it is); returns whether it already was.
  function need(c, then) {
    if (chunks.has(c)) return true;
    if (waiting.has(c)) { waiting.get(c).push(then); return false; }
    waiting.set(c, [then]);
    const inline = document.getElementById("qkv-rows-" + c);
    if (inline) {
      chunkArrived(c, inline.textContent);
      return true;
    }
    const s = document.createElement("script");
    s.src = D.chunks.src + "rows-" + String(c).padStart(5, "0") + ".js";
    s.onerror = () => {
      $("where").textContent = "Could not load " + s.src + ": keep the folder " + D.chunks.src +
        " beside this page (it holds each token's attention rows).";
    };
    document.head.appendChild(s);
    return false;
  }
  // The entries [key, weight] of row i of map (li, hi), hi = -1: the mean of the heads; null
  // while its chunk loads (then() runs when it is there).
  function rowEntries(li, hi, i, then) {
    const hs = hi < 0 ? [...Array(NH).keys()] : [hi];
    const acc = new Map();
    if (!ROWS) {
      for (const h of hs) {
        const m = maps[li * NH + h];
        for (let j = 0; j < T; j++) {
          const w = weight(m, i, j, T, D.tri);
          if (w > 0) acc.set(j, (acc.get(j) || 0) + w / hs.length);
        }
      }
    } else {
      const c = Math.floor(i / PER);
      if (!need(c, then || (() => {}))) return null;
      const ch = chunks.get(c), r = i - c * PER;
      for (const h of hs) {
        const base = ((li * NH + h) * ch.nr + r) * K;
        for (let t = 0; t < K; t++) {
          const key = ch.keys[base + t];
          if (key === 0xffffffff) break;
          acc.set(key, (acc.get(key) || 0) + q2p(ch.w[base + t]) / hs.length);
        }
      }
    }
    return [...acc.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  }

  // A dense Float32Array [n, n] of a selected (layer, head); head = -1: the mean of the heads. In
  // rows mode: the block summary [NB, NB]. Only the current one is kept.
  const cache = new Map();
  function dense(li, hi) {
    const key = li + ":" + hi;
    if (cache.has(key)) return cache.get(key);
    cache.clear();
    const n = ROWS ? NB : T, src = ROWS ? blocks : maps;
    const out = new Float32Array(n * n);
    const hs = hi < 0 ? [...Array(NH).keys()] : [hi];
    for (const h of hs) {
      const m = src[li * NH + h];
      for (let i = 0; i < n; i++) {
        const last = D.tri ? i : n - 1;
        for (let j = 0; j <= last; j++) out[i * n + j] += weight(m, i, j, n, D.tri) / hs.length;
      }
    }
    cache.set(key, out);
    return out;
  }

  const state = { li: NL - 1, hi: -1, focus: -1, top: 0 };
  const VIEW_ROWS = 40, ROW_H = 18;

  const color = qkvRender.color;
  // A square map: side x side pixels of the n x n entries at(i, j).
  const drawMap = (canvas, at, n, side) => qkvRender.drawMap(canvas, at, n, n, side, side);

  // Model view: one small map per (layer, head) (block summaries in rows mode); click selects it.
  function drawModelView() {
    const grid = $("model-view");
    grid.innerHTML = "";
    grid.style.gridTemplateColumns = "auto repeat(" + NH + ", auto)";
    grid.appendChild(document.createElement("div"));
    for (let h = 0; h < NH; h++) {
      const d = document.createElement("div");
      d.className = "hdr";
      d.textContent = "head " + D.heads[h];
      grid.appendChild(d);
    }
    const n = ROWS ? NB : T;
    let count = 0;
    for (let l = 0; l < NL; l++) {
      const d = document.createElement("div");
      d.className = "hdr";
      d.textContent = "layer " + D.layers[l] + layerKind(D.layers[l]);
      grid.appendChild(d);
      for (let h = 0; h < NH; h++) {
        const c = document.createElement("canvas");
        c.className = "thumb" + (l === state.li && h === state.hi ? " sel" : "");
        c.title = "layer " + D.layers[l] + ", head " + D.heads[h] + " (click to enlarge)";
        const m = (ROWS ? blocks : maps)[l * NH + h];
        drawMap(c, (i, j) => weight(m, i, j, n, D.tri), n, Math.min(72, Math.max(n, 24)));
        c.addEventListener("click", () => select(l, h));
        grid.appendChild(c);
        count++;
      }
    }
    body.dataset.modelviewMaps = count;
  }

  // Heatmap with token labels (block ranges in rows mode); labels only when a cell is >= 9 px.
  function drawHeatmap() {
    const m = dense(state.li, state.hi);
    const n = ROWS ? NB : T;
    const name = (i) => (ROWS ? "#" + i * B + "-" + (Math.min(T, (i + 1) * B) - 1) : label(i));
    const cell = Math.max(1, Math.min(24, Math.floor(720 / n)));
    const side = cell * n;
    const c = $("heatmap");
    drawMap(c, (i, j) => m[i * n + j], n, side);
    let cells = 0;
    for (let k = 0; k < m.length; k++) if (m[k] > 0) cells++;
    const rowsBox = $("heatmap-labels");
    rowsBox.textContent = "";
    // Column (key) labels, rotated, in a strip above the map; the row labels start below it.
    const cols = $("heatmap-cols");
    const strip = cell >= 9 ? 70 : 0;
    cols.width = side;
    cols.height = strip;
    rowsBox.style.paddingTop = strip + 1 + "px";  // + the heatmap border
    if (cell >= 9) {
      const cx = cols.getContext("2d");
      cx.font = Math.min(12, cell - 2) + "px monospace";
      cx.fillStyle = "#222";
      for (let j = 0; j < n; j++) {
        cx.save();
        cx.translate(j * cell + cell * 0.75, strip - 2);
        cx.rotate(-Math.PI / 2);
        cx.fillText(name(j).slice(0, 10), 0, 0);
        cx.restore();
      }
      for (let i = 0; i < n; i++) {
        const s = document.createElement("div");
        s.style.height = cell + "px";
        s.style.fontSize = Math.min(12, cell - 2) + "px";
        s.textContent = name(i);
        rowsBox.appendChild(s);
      }
    }
    const at = (ev) => {
      const r = c.getBoundingClientRect();
      return [Math.floor(((ev.clientY - r.top) / r.height) * n), Math.floor(((ev.clientX - r.left) / r.width) * n)];
    };
    c.onmousemove = (ev) => {
      const [i, j] = at(ev);
      if (i < 0 || j < 0 || i >= n || j >= n) return;
      $("tip").textContent = ROWS
        ? "queries " + name(i) + " -> keys " + name(j) + ": mean mass " + m[i * n + j].toFixed(5)
        : "query #" + i + " \"" + label(i) + "\" -> key #" + j + " \"" + label(j) + "\": " + m[i * n + j].toFixed(5);
    };
    // A click focuses that row (rows mode: the last token of that block).
    c.onclick = (ev) => {
      const i = at(ev)[0];
      setFocus(ROWS ? Math.min(T - 1, i * B + B - 1) : i, true);
    };
    body.dataset.heatmapCells = cells;
  }

  // Head view: queries on the left, keys on the right, a line per pair with opacity = weight.
  // Virtualised: only the VIEW_ROWS tokens from state.top are drawn; the wheel scrolls.
  function drawHeadView() {
    const c = $("head-view");
    const rows = Math.min(VIEW_ROWS, T);
    c.width = 560;
    c.height = rows * ROW_H + 8;
    const ctx = c.getContext("2d");
    ctx.clearRect(0, 0, c.width, c.height);
    ctx.font = "12px monospace";
    const x0 = 200, x1 = 360;
    const end = Math.min(T, state.top + rows);
    let lines = 0;
    for (let i = state.top; i < end; i++) {
      if (state.focus >= 0 && i !== state.focus) continue;
      const row = rowEntries(state.li, state.hi, i, drawHeadView);
      if (!row) continue;  // its chunk is loading; drawn again when it is there
      for (const [j, w] of row) {
        if (j < state.top || j >= end || w < 0.01) continue;
        ctx.strokeStyle = "rgba(8,48,107," + Math.min(1, w).toFixed(3) + ")";
        ctx.lineWidth = state.focus >= 0 ? 3 : 1.5;
        ctx.beginPath();
        ctx.moveTo(x0, (i - state.top) * ROW_H + ROW_H / 2 + 4);
        ctx.lineTo(x1, (j - state.top) * ROW_H + ROW_H / 2 + 4);
        ctx.stroke();
        lines++;
      }
    }
    for (let i = state.top; i < end; i++) {
      const y = (i - state.top) * ROW_H + ROW_H / 2 + 8;
      ctx.fillStyle = i === state.focus ? "#c00" : "#222";
      ctx.textAlign = "right";
      ctx.fillText(label(i).slice(0, 24), x0 - 6, y);
      ctx.textAlign = "left";
      ctx.fillText(label(i).slice(0, 24), x1 + 6, y);
    }
    c.onmousemove = (ev) => {
      const r = c.getBoundingClientRect();
      const i = state.top + Math.floor((ev.clientY - r.top - 4) / ROW_H);
      if (i >= state.top && i < end && i !== state.focus) setFocus(i, false);
    };
    c.onwheel = (ev) => {
      ev.preventDefault();
      state.top = Math.max(0, Math.min(T - rows, state.top + Math.sign(ev.deltaY) * 5));
      drawHeadView();
    };
    $("head-range").textContent = "tokens " + state.top + "-" + (end - 1) + " of " + T +
      (T > rows ? " (scroll to move)" : "");
    body.dataset.headviewLines = lines;
  }

  // "Where did this come from": for the focused token, per layer (mean of the heads), the spans of
  // neighbouring keys (gaps of at most one token) among its heaviest keys, with a strip showing
  // where in the whole text they are.
  function drawWhere() {
    const box = $("where");
    const i = state.focus;
    if (i < 0) {
      box.textContent = "Click a heatmap row or hover a token to see where its attention comes from.";
      body.dataset.whereLayers = 0;
      return;
    }
    const perLayer = [];
    for (let l = 0; l < NL; l++) {
      const row = rowEntries(l, -1, i, drawWhere);
      if (!row) {
        box.textContent = "Loading the rows of token #" + i + "...";
        return;
      }
      perLayer.push(row);
    }
    box.textContent = "";
    const head = document.createElement("div");
    head.textContent = "#" + i + " \"" + label(i) + "\": the spans it attends to most, per layer (mean of the heads" +
      (ROWS ? "; each row's top " + K + " keys per head" : "") + "). Click a span to show it in the head view.";
    box.appendChild(head);
    const table = document.createElement("table");
    perLayer.forEach((row, l) => {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.textContent = "layer " + D.layers[l];
      tr.appendChild(th);
      // Spans: the 16 heaviest keys (>= 0.01) in order, runs with gaps of at most one token merged.
      const keys = row.slice(0, 16).filter(([, w]) => w >= 0.01).sort((a, b) => a[0] - b[0]);
      const spans = [];
      for (const [j, w] of keys) {
        const s = spans[spans.length - 1];
        if (s && j - s.b <= 2) { s.b = j; s.w += w; } else spans.push({ a: j, b: j, w });
      }
      spans.sort((x, y) => y.w - x.w);
      const strip = document.createElement("canvas");
      strip.width = 240;
      strip.height = 12;
      strip.className = "strip";
      const sc = strip.getContext("2d");
      sc.fillStyle = "#eee";
      sc.fillRect(0, 0, 240, 12);
      for (const [j, w] of keys) {
        sc.fillStyle = "rgba(8,48,107," + Math.min(1, 0.15 + w).toFixed(3) + ")";
        sc.fillRect(Math.floor((j * 240) / T), 0, Math.max(1, Math.ceil(240 / T)), 12);
      }
      const td0 = document.createElement("td");
      td0.appendChild(strip);
      tr.appendChild(td0);
      for (const s of spans.slice(0, 3)) {
        const td = document.createElement("td");
        const text = labels.slice(s.a, s.b + 1).join("");
        td.textContent = "#" + s.a + (s.b > s.a ? "-" + s.b : "") + " \"" + (text.length > 32 ? text.slice(0, 31) + "\u2026" : text) +
          "\" " + s.w.toFixed(3);
        td.className = "span";
        td.onclick = () => { state.top = Math.max(0, Math.min(T - VIEW_ROWS, s.a - 5)); drawHeadView(); };
        tr.appendChild(td);
      }
      table.appendChild(tr);
    });
    box.appendChild(table);
    body.dataset.whereLayers = perLayer.length;
  }

  function drawAnalyses() {
    const tb = $("scores");
    tb.innerHTML = "";
    for (const s of D.analyses.heads) {
      const tr = document.createElement("tr");
      for (const k of ["layer", "head", "previous", "first", "self", "same_word", "induction", "entropy"]) {
        const td = document.createElement("td");
        td.textContent = typeof s[k] === "number" && !Number.isInteger(s[k]) ? s[k].toFixed(3) : s[k];
        tr.appendChild(td);
      }
      tr.onclick = () => select(D.layers.indexOf(s.layer), D.heads.indexOf(s.head));
      tb.appendChild(tr);
    }
    if (D.analyses.note) $("scores-note").textContent = D.analyses.note;
  }

  // The focus line: the keys the focused token attends to most in the selected map, and (dense
  // mode) its attention rollout to the input.
  function drawFocus() {
    const f = $("focus");
    const i = state.focus;
    if (i < 0) {
      f.textContent = "Hover a token in the head view or click a heatmap row.";
      return;
    }
    const row = rowEntries(state.li, state.hi, i, drawFocus);
    if (!row) {
      f.textContent = "Loading the rows of token #" + i + "...";
      return;
    }
    let text = "#" + i + " \"" + label(i) + "\" attends most to " +
      row.slice(0, 5).map(([j, w]) => "\"" + label(j) + "\" (#" + j + ") " + w.toFixed(3)).join(", ") + ".";
    if (!ROWS) {
      const roll = (j) => weight(rollout, i, j, T, D.tri);
      const rtop = [...Array(T).keys()].sort((a, b) => roll(b) - roll(a)).slice(0, 5);
      text += " Rollout to the input: " + rtop.map((j) => "\"" + label(j) + "\" " + roll(j).toFixed(3)).join(", ");
    }
    f.textContent = text;
  }

  // scroll: bring the token into the head view (a click elsewhere) rather than keep the window.
  function setFocus(i, scroll) {
    state.focus = i >= 0 && i < T ? i : -1;
    if (scroll && state.focus >= 0) state.top = Math.max(0, Math.min(T - VIEW_ROWS, state.focus - VIEW_ROWS / 2));
    body.dataset.focus = state.focus;
    drawHeadView();
    drawFocus();
    drawWhere();
  }

  let tabs = null, compareRedraw = null;
  function select(li, hi) {
    state.li = li;
    state.hi = hi;
    $("layer").value = li;
    $("head").value = hi;
    document.querySelectorAll(".thumb").forEach((c, k) => {
      c.classList.toggle("sel", Math.floor(k / NH) === li && k % NH === hi);
    });
    drawHeatmap();
    drawHeadView();
    drawFocus();
    $("title").textContent = "layer " + D.layers[li] + (hi < 0 ? ", mean of heads" : ", head " + D.heads[hi]);
    body.dataset.layer = li;
    body.dataset.head = hi;
    if (compareRedraw) compareRedraw();
  }

  // A section's head (model layer and head numbers): its map on the attention tab when captured.
  function openHead(layer, head) {
    const li = D.layers.indexOf(layer), hi = D.heads.indexOf(head);
    if (li < 0 || hi < 0) {
      $("opened").textContent = "Layer " + layer + ", head " + head + " was not captured (--layers, --heads).";
      if (tabs) tabs.show("attention");
      return false;
    }
    select(li, hi);
    if (tabs) tabs.show("attention");
    return true;
  }

  // The most decisive head of the sections that name a target (docs/EXPLAIN.md): the largest
  // |ablation delta|, else |direct logit attribution|, else |attention x gradient|.
  function decisiveHead() {
    const from = [["ablation", "delta", "the largest |ablation delta|"],
      ["direct_logit_attribution", "heads", "the largest |direct logit attribution|"],
      ["attention_gradient", "scores", "the largest |attention x gradient|"]];
    for (const [key, field, why] of from) {
      const s = D[key];
      if (!s || !Array.isArray(s[field])) continue;
      let best = null, bv = -1;
      s[field].forEach((r, l) => r.forEach((v, h) => {
        if (Number.isFinite(v) && Math.abs(v) > bv) { bv = Math.abs(v); best = [l, h]; }
      }));
      if (!best) continue;
      // `layers` / `heads` name the rows and columns when they are lists of numbers; the direct
      // logit attribution's `heads` is its table itself.
      const isList = (v, n) => Array.isArray(v) && v.length === n && v.every(Number.isInteger);
      const layer = isList(s.layers, s[field].length) ? s.layers[best[0]] : best[0];
      const head = isList(s.heads, s[field][best[0]].length) ? s.heads[best[1]] : best[1];
      return { layer, head, why, target: s.target };
    }
    return null;
  }

  // Compare tab: the selected map of both prompts and their difference on the first's grid.
  function drawCompare(pane, s) {
    const TB = s.tokens.length;
    const mapsB = s.maps.map(decode);
    const row = document.createElement("div");
    row.className = "row";
    pane.appendChild(row);
    const tip = document.createElement("div");
    tip.className = "tip";
    pane.appendChild(tip);
    const titles = ["First prompt", "Second prompt", "Difference (first - second)"];
    const canv = titles.map((t) => {
      const d = document.createElement("div");
      const h = document.createElement("h3");
      h.textContent = t;
      d.appendChild(h);
      const c = document.createElement("canvas");
      c.className = "cmp";
      d.appendChild(c);
      row.appendChild(d);
      return c;
    });
    const textB = document.createElement("p");
    textB.textContent = "Second prompt: " + s.tokens.map(visible).join("|");
    pane.insertBefore(textB, row);
    let cells = 0;
    const redraw = () => {
      const a = dense(state.li, state.hi);
      const hs = state.hi < 0 ? [...Array(NH).keys()] : [state.hi];
      const mb = new Float32Array(TB * TB);  // the second prompt's map, as dense() makes the first's
      for (const h of hs) {
        const m = mapsB[state.li * NH + h];
        for (let i = 0; i < TB; i++) {
          for (let j = 0; j <= (s.tri ? i : TB - 1); j++) mb[i * TB + j] += weight(m, i, j, TB, s.tri) / hs.length;
        }
      }
      const b = (i, j) => mb[i * TB + j];
      // One pixel per entry, scaled up by the page (image-rendering: pixelated).
      const cell = Math.max(360 / Math.max(T, TB), Math.min(16, Math.floor(360 / Math.max(T, TB))));
      drawMap(canv[0], (i, j) => a[i * T + j], T, T);
      drawMap(canv[1], b, TB, TB);
      canv[0].style.width = cell * T + "px";
      canv[1].style.width = cell * TB + "px";
      const diff = canv[2];
      diff.width = diff.height = T;
      diff.style.width = cell * T + "px";
      const ctx = diff.getContext("2d");
      const img = ctx.createImageData(T, T);
      let max = 0;
      const d = new Float32Array(T * T).fill(NaN);
      for (let i = 0; i < T; i++) {
        for (let j = 0; j < T; j++) {
          const bi = s.align[i], bj = s.align[j];
          if (bi < 0 || bj < 0) continue;
          d[i * T + j] = a[i * T + j] - b(bi, bj);
          max = Math.max(max, Math.abs(d[i * T + j]));
        }
      }
      cells = 0;
      for (let k = 0; k < T * T; k++) {
        const v = d[k];
        let c = [187, 187, 187];  // grey: no counterpart
        if (!Number.isNaN(v)) {
          const t = max > 0 ? Math.sqrt(Math.abs(v) / max) : 0;
          c = v >= 0 ? [255 - t * 77, 255 - t * 231, 255 - t * 212] : [255 - t * 222, 255 - t * 153, 255 - t * 83];
          cells++;
        }
        img.data[4 * k] = c[0];
        img.data[4 * k + 1] = c[1];
        img.data[4 * k + 2] = c[2];
        img.data[4 * k + 3] = 255;
      }
      ctx.putImageData(img, 0, 0);
      diff.onmousemove = (ev) => {
        const r = diff.getBoundingClientRect();
        const j = Math.floor(((ev.clientX - r.left) / r.width) * T), i = Math.floor(((ev.clientY - r.top) / r.height) * T);
        if (i < 0 || j < 0 || i >= T || j >= T) return;
        tip.textContent = "\"" + label(i) + "\" -> \"" + label(j) + "\": first " + a[i * T + j].toFixed(4) +
          (s.align[i] >= 0 && s.align[j] >= 0 ? ", second (\"" + visible(s.tokens[s.align[i]]) + "\" -> \"" +
            visible(s.tokens[s.align[j]]) + "\") " + b(s.align[i], s.align[j]).toFixed(4) + ", difference " +
            d[i * T + j].toFixed(4) : ", no counterpart in the second");
      };
      body.dataset.compareCells = cells;
    };
    compareRedraw = redraw;  // drawn by select(), as the other views
    return s.align.filter((x) => x >= 0).length ** 2;
  }

  // " (local, window W)" / " (global)" on models with sliding-window layers; "" otherwise.
  function layerKind(l) {
    const w = D.layer_windows || [];
    if (!w.some((x) => x > 0)) return "";
    return w[l] > 0 ? " (local, window " + w[l] + ")" : " (global)";
  }

  function init() {
    $("meta").textContent = D.model + " | " + T + " tokens (" + D.n_prompt + " prompt) | " + D.memory +
      (ROWS ? " | long context: block summaries of " + B + " tokens" + (D.blocks_exact ? "" : " (from the stored rows)") +
        ", each row's top " + K + " keys loaded on demand" : "");
    const ls = $("layer"), hs = $("head");
    D.layers.forEach((l, k) => ls.add(new Option("layer " + l + layerKind(l), k)));
    hs.add(new Option("mean of heads", -1));
    D.heads.forEach((h, k) => hs.add(new Option("head " + h, k)));
    ls.onchange = () => select(+ls.value, +hs.value);
    hs.onchange = () => select(+ls.value, +hs.value);
    // The view the command asked for (--map L:H, --token), else the most decisive head of a
    // section with a target; then #layer=L&head=H&focus=I (indices into the selections; head -1
    // = mean) in the address, which wins.
    const open = D.open || { layer: -1, head: -1, focus: -1, explicit: false, by: "" };
    state.li = open.layer >= 0 ? open.layer : NL - 1;
    state.hi = open.head;
    let focus = open.focus;
    let opened = open.by ? "Opened on what " + open.by + " asked for." : "";
    const dh = open.explicit ? null : decisiveHead();
    if (dh && D.layers.indexOf(dh.layer) >= 0 && D.heads.indexOf(dh.head) >= 0) {
      state.li = D.layers.indexOf(dh.layer);
      state.hi = D.heads.indexOf(dh.head);
      if (focus < 0 && dh.target && dh.target.position >= 0 && dh.target.position < T) focus = dh.target.position;
      opened = "Opened on layer " + dh.layer + ", head " + dh.head + ": " + dh.why + ".";
    } else if (dh) {
      opened = "The head of " + dh.why + ", layer " + dh.layer + " head " + dh.head +
        ", was not captured (--layers, --heads): opened on " + (open.by ? "what " + open.by + " asked for." : "the last layer's mean.");
    }
    $("opened").textContent = opened;
    const h = new URLSearchParams(location.hash.slice(1));
    if (h.has("layer")) state.li = Math.min(NL - 1, Math.max(0, +h.get("layer")));
    if (h.has("head")) state.hi = Math.min(NH - 1, Math.max(-1, +h.get("head")));
    if (h.has("focus")) focus = Math.min(T - 1, Math.max(-1, +h.get("focus")));
    drawModelView();
    drawAnalyses();
    tabs = qkvTabs({ D, visible, color, openHead, drawCompare });
    select(state.li, state.hi);
    setFocus(focus, true);
    body.dataset.openLayer = state.li;
    body.dataset.openHead = state.hi;
    body.dataset.tokens = T;
    body.dataset.mode = D.mode || "dense";
    body.dataset.drawnMs = Math.round(performance.now());
    requestAnimationFrame(() => { body.dataset.paintMs = Math.round(performance.now()); });
    body.dataset.ready = 1;
  }
  init();
})();
