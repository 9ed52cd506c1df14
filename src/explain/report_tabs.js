// qkv explain report, the tabs of the other methods (docs/EXPLAIN.md, "Report data"): one tab per
// section present in the data. [L][H] tables are layer x head heatmaps (a diverging scale for
// signed values) whose largest |value| is outlined and clickable (it opens that head's map);
// [T] scores are coloured token chips; [L][T] tables are layer x position heatmaps; the logit
// lens is a table of top tokens. report.js calls qkvTabs(R) with the page's shared helpers.
"use strict";
// eslint-disable-next-line no-unused-vars
function qkvTabs(R) {
  const D = R.D, body = document.body;
  const el = (tag, attrs, text) => {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const num = (x) => (typeof x === "number" ? (Math.abs(x) >= 100 ? x.toFixed(1) : x.toPrecision(3)) : String(x));
  const range = (n) => [...Array(n).keys()];
  // A section's `layers` / `heads` list when it has one: numbers, one per row (column). Not a
  // table: the direct logit attribution's `heads` field is its [L][H] table.
  const indexList = (list, n) => (Array.isArray(list) && list.length === n && list.every(Number.isInteger) ? list : range(n));

  // White at 0; red for positive, blue for negative (signed), or the report's blue (unsigned).
  function shade(v, max, signed) {
    const t = max > 0 ? Math.min(1, Math.abs(v) / max) : 0;
    if (!signed || v >= 0) {
      return signed ? [255 - t * 77, 255 - t * 231, 255 - t * 212] : R.color(Math.abs(v), max);
    }
    return [255 - t * 222, 255 - t * 153, 255 - t * 83];
  }
  function maxAbs(rows) {
    let m = 0;
    for (const r of rows) for (const v of r) if (Number.isFinite(v)) m = Math.max(m, Math.abs(v));
    return m;
  }
  const isSigned = (rows) => rows.some((r) => r.some((v) => v < 0));

  // A grid heatmap: rows x cols cells, row and column labels, a tooltip line, the largest |value|
  // outlined. onClick(r, c) when given. Returns { cells, best: [r, c] }.
  function grid(parent, rows, o) {
    const nr = rows.length, nc = nr ? rows[0].length : 0;
    const cw = o.cw || Math.max(2, Math.min(26, Math.floor(720 / Math.max(nc, 1))));
    const ch = o.ch || 18, left = o.left || 64, top = o.top || 16;
    const c = el("canvas", { class: "grid" });
    c.width = left + nc * cw + 2;
    c.height = top + nr * ch + 2;
    const ctx = c.getContext("2d");
    const max = maxAbs(rows), signed = o.signed !== undefined ? o.signed : isSigned(rows);
    let best = [-1, -1], bestV = -1, cells = 0;
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "#555";
    for (let r = 0; r < nr; r++) ctx.fillText(o.rowLabel(r), 2, top + r * ch + ch * 0.7);
    if (cw >= 16) for (let k = 0; k < nc; k++) ctx.fillText(o.colLabel(k), left + k * cw + 2, top - 4);
    for (let r = 0; r < nr; r++) {
      for (let k = 0; k < nc; k++) {
        const v = rows[r][k];
        if (!Number.isFinite(v)) {
          ctx.fillStyle = "#bbb";
        } else {
          const s = shade(v, max, signed);
          ctx.fillStyle = "rgb(" + s.map(Math.round).join(",") + ")";
          cells++;
          if (Math.abs(v) > bestV) {
            bestV = Math.abs(v);
            best = [r, k];
          }
        }
        ctx.fillRect(left + k * cw, top + r * ch, cw, ch);
      }
    }
    if (best[0] >= 0) {
      ctx.strokeStyle = "#000";
      ctx.lineWidth = 2;
      ctx.strokeRect(left + best[1] * cw + 1, top + best[0] * ch + 1, cw - 2, ch - 2);
    }
    const tip = el("div", { class: "tip" }, o.hint || "");
    const at = (ev) => {
      const b = c.getBoundingClientRect();
      const k = Math.floor((ev.clientX - b.left - left) / cw), r = Math.floor((ev.clientY - b.top - top) / ch);
      return r >= 0 && r < nr && k >= 0 && k < nc ? [r, k] : null;
    };
    c.onmousemove = (ev) => {
      const p = at(ev);
      if (p) tip.textContent = o.rowLabel(p[0]) + ", " + o.colName(p[1]) + ": " + num(rows[p[0]][p[1]]);
    };
    if (o.onClick) {
      c.style.cursor = "pointer";
      c.onclick = (ev) => {
        const p = at(ev);
        if (p) o.onClick(p[0], p[1]);
      };
    }
    parent.appendChild(c);
    parent.appendChild(tip);
    return { cells, best };
  }

  // A layer x head table: click a head to open its map on the attention tab.
  function layerHead(parent, rows, sec, what) {
    const layers = indexList(sec.layers, rows.length);
    const heads = indexList(sec.heads, rows.length ? rows[0].length : 0);
    const g = grid(parent, rows, {
      rowLabel: (r) => "layer " + layers[r],
      colLabel: (k) => String(heads[k]),
      colName: (k) => "head " + heads[k],
      hint: what + ". Outlined: the largest |value|. Click a head to open its map.",
      onClick: (r, k) => R.openHead(layers[r], heads[k]),
    });
    if (g.best[0] >= 0) {
      const [r, k] = g.best;
      const p = el("p", { class: "best" });
      p.appendChild(document.createTextNode("Largest: layer " + layers[r] + ", head " + heads[k] + " (" + num(rows[r][k]) + ") "));
      const b = el("button", {}, "open its map");
      b.onclick = () => R.openHead(layers[r], heads[k]);
      p.appendChild(b);
      parent.appendChild(p);
    }
    return g;
  }

  // Coloured chips, one per token; hover for the value.
  function chips(parent, scores, tokens) {
    const box = el("div", { class: "chips" });
    const max = maxAbs([scores]), signed = scores.some((v) => v < 0);
    scores.forEach((v, i) => {
      const s = el("span", { class: "chip", title: "#" + i + ": " + num(v) }, R.visible(tokens[i] || ""));
      s.style.background = "rgb(" + shade(v, max, signed).map(Math.round).join(",") + ")";
      box.appendChild(s);
    });
    parent.appendChild(box);
    return scores.length;
  }

  // Rows of per-position values (a layer x position table, or a (layer, head) x source table).
  function positions(parent, rows, rowLabel, tokens) {
    return grid(parent, rows, {
      rowLabel, colLabel: () => "", colName: (k) => "#" + k + " \"" + R.visible(tokens[k] || "") + "\"",
      ch: 14, left: 80, top: 4, hint: "Hover a cell for its position and value.",
    });
  }

  // The score a section's numbers are in: sections without `score` (written elsewhere) are read as
  // the data contract's log-probability.
  const scoreName = (s) => (s.score === "logit_difference" ? "logit difference" : "log-probability");
  const describe = (t) => (t ? "\"" + R.visible(t.text || "") + "\"" + (t.position !== undefined ? " at #" + t.position : "") : "");
  const flatHeads = (rows3, sec) => {
    const out = [], labels = [];
    const layers = indexList(sec.layers, rows3.length);
    const heads = indexList(sec.heads, rows3.length ? rows3[0].length : 0);
    rows3.forEach((byHead, l) => byHead.forEach((r, h) => {
      out.push(r);
      labels.push("L" + layers[l] + " H" + heads[h]);
    }));
    return [out, labels];
  };

  // Each renderer draws a section into `p` and returns the number of cells/chips/rows drawn.
  const RENDER = {
    attribution(p, s) {
      p.appendChild(el("p", {}, "Method " + s.method + (s.steps ? ", " + s.steps + " steps" : "") +
        (s.baseline ? ", baseline " + s.baseline : "") + "; target " + describe(s.target) +
        (s.contrast ? " rather than " + describe(s.contrast) : "") +
        (s.completeness ? "; attributions sum to " + num(s.completeness.sum) + ", f(x) - f(baseline) = " +
          num(s.completeness.delta) : "")));
      return chips(p, s.scores, D.tokens);
    },
    attention_gradient(p, s) {
      p.appendChild(el("p", {}, "Target " + describe(s.target)));
      let n = layerHead(p, s.scores, s, "Attention x gradient per head").cells;
      if (s.rows) {
        const [rows, names] = flatHeads(s.rows, s);
        p.appendChild(el("h3", {}, "The target row per head"));
        n += positions(p, rows, (r) => names[r], D.tokens).cells;
      }
      return n;
    },
    norm_attention(p, s) {
      p.appendChild(el("p", {}, "Query position #" + s.position + " \"" + R.visible(D.tokens[s.position] || "") + "\""));
      const [rows, names] = flatHeads(s.rows, s);
      return positions(p, rows, (r) => names[r], D.tokens).cells;
    },
    ablation(p, s) {
      // qkv writes `score`: with a contrast, baseline_logprob and delta are logit differences.
      const what = scoreName(s);
      p.appendChild(el("p", {}, "Mode " + s.mode + "; target " + describe(s.target) +
        (s.contrast ? " rather than " + describe(s.contrast) : "") + "; baseline " + what + " " + num(s.baseline_logprob)));
      return layerHead(p, s.delta, s, "Change in the target's " + what + " when the head is ablated").cells;
    },
    patching(p, s) {
      const what = scoreName(s);
      p.appendChild(el("p", {}, "Corrupted: \"" + s.corrupted_text + "\"; " + what + " clean " +
        num(s.clean_diff) + ", corrupted " + num(s.corrupted_diff)));
      p.appendChild(el("h3", {}, "Per layer and position (fraction restored)"));
      let n = positions(p, s.layer_position, (r) => "layer " + (s.layers ? s.layers[r] : r), D.tokens).cells;
      p.appendChild(el("h3", {}, "Per head (fraction restored)"));
      n += layerHead(p, s.head, s, "Fraction of the " + what + " difference restored by patching the head").cells;
      return n;
    },
    logit_lens(p, s) {
      const t = el("table", { class: "lens" });
      const hr = el("tr");
      hr.appendChild(el("th", {}, "layer"));
      for (const pos of s.positions) hr.appendChild(el("th", {}, "#" + pos + " " + R.visible(D.tokens[pos] || "")));
      t.appendChild(hr);
      let n = 0;
      s.top.forEach((byPos, l) => {
        const tr = el("tr");
        tr.appendChild(el("th", {}, String(s.layers ? s.layers[l] : l)));
        byPos.forEach((top) => {
          const td = el("td", {}, top.map((x) => R.visible(x.text) + " " + x.p.toFixed(2)).join("  "));
          const p0 = top.length ? top[0].p : 0;
          td.style.background = "rgba(8,48,107," + (0.05 + 0.4 * p0).toFixed(3) + ")";
          tr.appendChild(td);
          n++;
        });
        t.appendChild(tr);
      });
      p.appendChild(t);
      return n;
    },
    direct_logit_attribution(p, s) {
      p.appendChild(el("p", {}, "Target " + describe(s.target) + ": total " + num(s.total) + " = heads + MLPs " +
        "+ embedding " + num(s.embedding) + " + bias and rest " + num(s.bias_and_rest)));
      let n = layerHead(p, s.heads, s, "Direct contribution of each head to the target logit").cells;
      if (s.mlp) {
        p.appendChild(el("h3", {}, "MLP per layer"));
        n += grid(p, s.mlp.map((v) => [v]), {
          rowLabel: (r) => "layer " + (s.layers ? s.layers[r] : r), colLabel: () => "mlp", colName: () => "mlp",
          cw: 26, hint: "Direct contribution of each layer's MLP",
        }).cells;
      }
      return n;
    },
    compare(p, s) {
      return R.drawCompare(p, s);
    },
  };

  // The tab bar: "Attention" first, then one tab per section present, in RENDER's order.
  const bar = document.getElementById("tabs");
  const panes = { attention: document.getElementById("pane-attention") };
  const names = ["attention"];
  const show = (name) => {
    for (const k in panes) panes[k].style.display = k === name ? "" : "none";
    bar.querySelectorAll("button").forEach((b) => b.classList.toggle("on", b.dataset.tab === name));
    body.dataset.tab = name;
  };
  const addTab = (name, title) => {
    const b = el("button", { "data-tab": name }, title);
    b.onclick = () => show(name);
    bar.appendChild(b);
  };
  addTab("attention", "Attention");
  for (const key of Object.keys(RENDER)) {
    const s = D[key];
    if (!s || typeof s !== "object") continue;
    const pane = el("div", { class: "pane", id: "pane-" + key });
    pane.appendChild(el("h2", {}, s.title || key));
    if (s.note) pane.appendChild(el("p", { class: "note" }, s.note));
    document.getElementById("panes").appendChild(pane);
    panes[key] = pane;
    names.push(key);
    addTab(key, s.title || key);
    // A malformed section says so on its tab rather than breaking the page.
    try {
      body.dataset["tab" + key.replace(/(^|_)([a-z])/g, (m, a, c) => c.toUpperCase())] = RENDER[key](pane, s);
    } catch (err) {
      pane.appendChild(el("p", { class: "bad" }, "This section's data does not have the documented shape: " + err));
      body.dataset.badSections = (+body.dataset.badSections || 0) + 1;
    }
  }
  body.dataset.tabs = names.length;
  body.dataset.tabNames = names.join(",");
  show("attention");
  return { show };
}
