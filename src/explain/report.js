// qkv explain report: reads the JSON in <script id="qkv-data">, draws the model view (layers x
// heads of small maps), the heatmap (canvas, one pixel block per entry, labels only when cells are
// large enough), the head view (lines between tokens on a virtualised canvas) and the analyses.
// After drawing it writes counts into data-* attributes of <body> for the automated browser test.
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("qkv-data").textContent);
  const T = D.ids.length, NL = D.layers.length, NH = D.heads.length;
  const body = document.body;
  let errors = 0;
  window.addEventListener("error", () => { errors++; body.dataset.errors = errors; });
  body.dataset.errors = 0;

  // Maps: uint16 of sqrt(p) * 65535, little-endian, base64; lower triangle only when D.tri.
  function decode(b64) {
    const bin = atob(b64);
    const u = new Uint16Array(bin.length / 2);
    for (let i = 0; i < u.length; i++) u[i] = bin.charCodeAt(2 * i) | (bin.charCodeAt(2 * i + 1) << 8);
    return u;
  }
  const maps = D.maps.map(decode);
  const rollout = decode(D.rollout);
  const rowStart = (i) => (D.tri ? (i * (i + 1)) / 2 : i * T);
  function weight(m, i, j) {
    if (D.tri && j > i) return 0;
    const q = m[rowStart(i) + j] / 65535;
    return q * q;
  }
  // A dense Float32Array [T, T] of a selected (layer, head); head = -1: the mean of the heads.
  // Only the current one is kept: at 2,000+ tokens each is tens of megabytes.
  const cache = new Map();
  function dense(li, hi) {
    const key = li + ":" + hi;
    if (cache.has(key)) return cache.get(key);
    cache.clear();
    const out = new Float32Array(T * T);
    const hs = hi < 0 ? [...Array(NH).keys()] : [hi];
    for (const h of hs) {
      const m = maps[li * NH + h];
      for (let i = 0; i < T; i++) {
        const last = D.tri ? i : T - 1;
        for (let j = 0; j <= last; j++) out[i * T + j] += weight(m, i, j) / hs.length;
      }
    }
    cache.set(key, out);
    return out;
  }

  const state = { li: NL - 1, hi: -1, focus: -1, top: 0 };
  const $ = (id) => document.getElementById(id);
  const label = (i) => JSON.stringify(D.tokens[i]).slice(1, -1);

  function color(w, max) {
    const t = max > 0 ? Math.sqrt(Math.min(Math.max(w / max, 0), 1)) : 0;
    return [Math.round(255 - t * 247), Math.round(255 - t * 207), Math.round(255 - t * 148)];
  }

  // Draws side x side pixels, pixel (x, y) showing entry (y * T / side, x * T / side) of at(i, j).
  function drawMap(canvas, at, side) {
    canvas.width = side;
    canvas.height = side;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(side, side);
    const idx = [];
    for (let x = 0; x < side; x++) idx.push(Math.floor((x * T) / side));
    let max = 0;
    for (const i of idx) for (const j of idx) max = Math.max(max, at(i, j));
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        const c = color(at(idx[y], idx[x]), max);
        const o = 4 * (y * side + x);
        img.data[o] = c[0];
        img.data[o + 1] = c[1];
        img.data[o + 2] = c[2];
        img.data[o + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
  }

  // Model view: one small map per (layer, head); click selects it.
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
    let n = 0;
    for (let l = 0; l < NL; l++) {
      const d = document.createElement("div");
      d.className = "hdr";
      d.textContent = "layer " + D.layers[l] + layerKind(D.layers[l]);
      grid.appendChild(d);
      for (let h = 0; h < NH; h++) {
        const c = document.createElement("canvas");
        c.className = "thumb" + (l === state.li && h === state.hi ? " sel" : "");
        c.title = "layer " + D.layers[l] + ", head " + D.heads[h] + " (click to enlarge)";
        const m = maps[l * NH + h];
        drawMap(c, (i, j) => weight(m, i, j), Math.min(72, Math.max(T, 24)));
        c.addEventListener("click", () => select(l, h));
        grid.appendChild(c);
        n++;
      }
    }
    body.dataset.modelviewMaps = n;
  }

  // Heatmap with token labels; labels are drawn only when a cell is at least 9 px tall.
  function drawHeatmap() {
    const m = dense(state.li, state.hi);
    const cell = Math.max(1, Math.min(24, Math.floor(720 / T)));
    const side = cell * T;
    const c = $("heatmap");
    drawMap(c, (i, j) => m[i * T + j], side);
    let cells = 0;
    for (let k = 0; k < m.length; k++) if (m[k] > 0) cells++;
    const labels = $("heatmap-labels");
    labels.textContent = "";
    // Column (key) labels, rotated, in a strip above the map; the row labels start below it.
    const cols = $("heatmap-cols");
    const strip = cell >= 9 ? 70 : 0;
    cols.width = side;
    cols.height = strip;
    labels.style.paddingTop = strip + 1 + "px";  // + the heatmap border
    if (cell >= 9) {
      const cx = cols.getContext("2d");
      cx.font = Math.min(12, cell - 2) + "px monospace";
      cx.fillStyle = "#222";
      for (let j = 0; j < T; j++) {
        cx.save();
        cx.translate(j * cell + cell * 0.75, strip - 2);
        cx.rotate(-Math.PI / 2);
        cx.fillText(label(j).slice(0, 10), 0, 0);
        cx.restore();
      }
    }
    if (cell >= 9) {
      for (let i = 0; i < T; i++) {
        const s = document.createElement("div");
        s.style.height = cell + "px";
        s.style.fontSize = Math.min(12, cell - 2) + "px";
        s.textContent = label(i);
        labels.appendChild(s);
      }
    }
    c.onmousemove = (ev) => {
      const r = c.getBoundingClientRect();
      const j = Math.floor(((ev.clientX - r.left) / r.width) * T);
      const i = Math.floor(((ev.clientY - r.top) / r.height) * T);
      if (i < 0 || j < 0 || i >= T || j >= T) return;
      $("tip").textContent = "query #" + i + " \"" + label(i) + "\" -> key #" + j + " \"" +
        label(j) + "\": " + m[i * T + j].toFixed(5);
    };
    c.onclick = (ev) => {
      const r = c.getBoundingClientRect();
      setFocus(Math.floor(((ev.clientY - r.top) / r.height) * T));
    };
    body.dataset.heatmapCells = cells;
  }

  // Head view: queries on the left, keys on the right, a line per pair with opacity = weight.
  // Virtualised: only the ROWS tokens from state.top are drawn; the wheel scrolls.
  const ROWS = 40, ROW_H = 18;
  function drawHeadView() {
    const m = dense(state.li, state.hi);
    const c = $("head-view");
    const rows = Math.min(ROWS, T);
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
      for (let j = state.top; j < end; j++) {
        const w = m[i * T + j];
        if (w < 0.01) continue;
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
      if (i >= state.top && i < end && i !== state.focus) setFocus(i);
    };
    c.onmouseleave = () => setFocus(-1);
    c.onwheel = (ev) => {
      ev.preventDefault();
      state.top = Math.max(0, Math.min(T - rows, state.top + Math.sign(ev.deltaY) * 5));
      drawHeadView();
    };
    $("head-range").textContent = "tokens " + state.top + "-" + (end - 1) + " of " + T +
      (T > rows ? " (scroll to move)" : "");
    body.dataset.headviewLines = lines;
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
    const f = $("focus");
    if (state.focus < 0) {
      f.textContent = "Hover a token in the head view or click a heatmap row.";
      return;
    }
    const m = dense(state.li, state.hi);
    const i = state.focus;
    const top = [...Array(T).keys()].filter((j) => m[i * T + j] > 0)
      .sort((a, b) => m[i * T + b] - m[i * T + a]).slice(0, 5);
    const roll = (j) => weight(rollout, i, j);
    const rtop = [...Array(T).keys()].sort((a, b) => roll(b) - roll(a)).slice(0, 5);
    f.textContent = "#" + i + " \"" + label(i) + "\" attends most to " +
      top.map((j) => "\"" + label(j) + "\" " + m[i * T + j].toFixed(3)).join(", ") +
      ". Rollout to the input: " +
      rtop.map((j) => "\"" + label(j) + "\" " + roll(j).toFixed(3)).join(", ");
  }

  function setFocus(i) {
    state.focus = i >= 0 && i < T ? i : -1;
    drawHeadView();
    drawAnalyses();
  }

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
    drawAnalyses();
    $("title").textContent = "layer " + D.layers[li] + (hi < 0 ? ", mean of heads" : ", head " + D.heads[hi]);
  }

  // " (local, window W)" / " (global)" on models with sliding-window layers; "" otherwise.
  function layerKind(l) {
    const w = D.layer_windows || [];
    if (!w.some((x) => x > 0)) return "";
    return w[l] > 0 ? " (local, window " + w[l] + ")" : " (global)";
  }

  function init() {
    $("meta").textContent = D.model + " | " + T + " tokens (" + D.n_prompt + " prompt) | " + D.memory;
    const ls = $("layer"), hs = $("head");
    D.layers.forEach((l, k) => ls.add(new Option("layer " + l + layerKind(l), k)));
    hs.add(new Option("mean of heads", -1));
    D.heads.forEach((h, k) => hs.add(new Option("head " + h, k)));
    ls.onchange = () => select(+ls.value, +hs.value);
    hs.onchange = () => select(+ls.value, +hs.value);
    // #layer=L&head=H&focus=I (indices into the selections; head -1 = mean) opens a given view.
    const h = new URLSearchParams(location.hash.slice(1));
    if (h.has("layer")) state.li = Math.min(NL - 1, Math.max(0, +h.get("layer")));
    if (h.has("head")) state.hi = Math.min(NH - 1, Math.max(-1, +h.get("head")));
    if (h.has("focus")) {
      state.focus = Math.min(T - 1, Math.max(-1, +h.get("focus")));
      state.top = Math.max(0, Math.min(T - ROWS, state.focus - ROWS / 2));
    }
    drawModelView();
    select(state.li, state.hi);
    body.dataset.tokens = T;
    body.dataset.ready = 1;
  }
  init();
})();
