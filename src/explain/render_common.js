// The drawing shared by the explain report (report.js, report_tabs.js) and the page `qkv serve`
// serves (src/serve/page.html): how a token is shown, the colour scale of attention weights and
// the map canvas. One copy of each, so a map, a head's cell and a token look the same in both.
// Defines the global qkvRender; nothing else.
"use strict";
// eslint-disable-next-line no-unused-vars
const qkvRender = (function () {
  // Characters that draw nothing or only blank space, escaped as \uXXXX (qkv::visible_token's
  // list): C1 controls, Unicode spaces other than U+0020, zero-width and bidi format characters,
  // the byte-order mark. The zero-width joiner and variation selectors stay (emoji).
  function invisible(c) {
    const inr = (lo, hi) => c >= lo && c <= hi;
    return inr(0x80, 0x9f) || c === 0xa0 || c === 0xad || c === 0x34f || c === 0x61c ||
      inr(0x115f, 0x1160) || c === 0x1680 || c === 0x180e || inr(0x2000, 0x200c) ||
      inr(0x200e, 0x200f) || inr(0x2028, 0x202f) || inr(0x205f, 0x2064) || inr(0x2066, 0x206f) ||
      c === 0x3000 || c === 0x3164 || c === 0xfeff || c === 0xffa0;
  }

  // A token drawn visibly, as qkv::visible_token does: newline ↵, tab →, spaces at either end ·,
  // \r and other control characters as escapes, the empty text ∅. Never a blank label.
  function visible(s) {
    if (s.length === 0) return "\u2205";
    const lead = s.length - s.replace(/^ +/, "").length;
    const trail = s.replace(/ +$/, "").length;
    let out = "";
    for (let k = 0; k < s.length; k++) {
      const c = s.charCodeAt(k);
      if (c === 32) out += k < lead || k >= trail ? "\u00b7" : " ";
      else if (c === 10) out += "\u21b5";
      else if (c === 9) out += "\u2192";
      else if (c === 13) out += "\\r";
      else if (c < 32 || c === 127) out += "\\x" + c.toString(16).padStart(2, "0");
      else if (invisible(c)) out += "\\u" + c.toString(16).padStart(4, "0");
      else out += s[k];
    }
    return out;
  }

  // Weight w on a scale whose top is max: white to the report's blue, by sqrt so that small
  // weights stay visible. [r, g, b].
  function color(w, max) {
    const t = max > 0 ? Math.sqrt(Math.min(Math.max(w / max, 0), 1)) : 0;
    return [Math.round(255 - t * 247), Math.round(255 - t * 207), Math.round(255 - t * 148)];
  }
  const css = (w, max) => "rgb(" + color(w, max).join(",") + ")";

  // Draws at(i, j) for i < rows, j < cols into a width x height canvas (pixel (x, y) shows entry
  // (y * rows / height, x * cols / width)), scaled to the largest entry sampled. Returns that max.
  function drawMap(canvas, at, rows, cols, width, height) {
    canvas.width = width;
    canvas.height = height;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(width, height);
    const ri = [], ci = [];
    for (let y = 0; y < height; y++) ri.push(Math.floor((y * rows) / height));
    for (let x = 0; x < width; x++) ci.push(Math.floor((x * cols) / width));
    let max = 0;
    for (const i of ri) for (const j of ci) max = Math.max(max, at(i, j));
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const c = color(at(ri[y], ci[x]), max);
        const o = 4 * (y * width + x);
        img.data[o] = c[0];
        img.data[o + 1] = c[1];
        img.data[o + 2] = c[2];
        img.data[o + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
    return max;
  }

  // Paints row y of a canvas that shows one entry per pixel: values[x] for x < canvas.width, on
  // a scale whose top is max. A map that grows by rows (the serve page's reply) adds each row
  // with this instead of repainting the whole canvas.
  function drawRow(canvas, y, values, max) {
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(canvas.width, 1);
    for (let x = 0; x < canvas.width; x++) {
      const c = color(x < values.length ? values[x] : 0, max);
      img.data[4 * x] = c[0];
      img.data[4 * x + 1] = c[1];
      img.data[4 * x + 2] = c[2];
      img.data[4 * x + 3] = 255;
    }
    ctx.putImageData(img, 0, y);
  }

  return { visible, color, css, drawMap, drawRow };
})();
