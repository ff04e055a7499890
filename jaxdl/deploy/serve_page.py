"""The page `python -m jaxdl.serve` shows at GET /: static HTML and JavaScript, no outside files.

It reads GET /info and builds the input for the run's kind of data:
  - images (uint8, (height, width, 1 or 3)): a canvas to draw on with the mouse (light on dark, as
    the digits are stored) or a picture to upload (stretched to the canvas, as the `folder:`
    builder resizes; "invert" for dark-on-light pictures). The canvas is averaged down to the run's
    height x width and sent as uint8 pixels 0..255;
  - a `csv:` table: one field per feature column (a number, or a category from the run's list;
    empty is a missing value), sent as an object keyed by the column names;
  - anything else (sequences): a text field of numbers, reshaped to the run's input shape.
On every change it POSTs the input to /predict (all classes, shown as bars) and to /activations
(the hidden layers, drawn as strips, matrices or feature maps). With "explain" ticked it also POSTs
it to /explain and shows why: an image's attribution map drawn over the pad (red: pushed towards the
answer, blue: against it), a table's top features with their signed contributions and a sentence,
a sequence's per-step attributions as a strip. `window.lastInput` holds the input whose answer is
shown in `#predicted`, `window.lastWhy` its explanation (or null), `window.idle()` says no request
is on its way (the browser test reads them).
"""

PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>jaxdl serve</title>
<style>
  body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
  h1 { font-size: 1.3em; margin: 0 0 .3em; }
  #run { color: #666; margin-bottom: 1em; }
  main { display: flex; gap: 2em; flex-wrap: wrap; align-items: flex-start; }
  section { min-width: 300px; }
  h2 { font-size: 1.05em; margin: .2em 0 .6em; }
  #pad { background: #000; cursor: crosshair; touch-action: none; border: 1px solid #888; }
  #frame { position: relative; display: inline-block; line-height: 0; }
  #whymap { position: absolute; left: 1px; top: 1px; width: 280px; height: 280px; pointer-events: none;
            image-rendering: pixelated; }
  #why .feature { font-variant-numeric: tabular-nums; } #why .up { color: #c62828; } #why .down { color: #1565c0; }
  #why { max-width: 420px; } #why .note { color: #555; font-size: .9em; margin: .3em 0; }
  #small { image-rendering: pixelated; width: 96px; border: 1px solid #888; vertical-align: top; }
  .row { margin: .5em 0; }
  .bar { display: flex; align-items: center; gap: .5em; margin: 2px 0; }
  .bar .name { width: 6em; text-align: right; overflow: hidden; white-space: nowrap; }
  .bar .track { width: 220px; height: 14px; background: #eee; }
  .bar .fill { height: 14px; background: #4a7bd0; }
  .bar.top .fill { background: #d0642a; }
  .bar .value { width: 4em; font-variant-numeric: tabular-nums; }
  #predicted { font-size: 1.4em; font-weight: 600; min-height: 1.4em; }
  #message { color: #b00020; min-height: 1.2em; }
  .layer { margin: .6em 0; }
  .layer .title { color: #555; font-size: .9em; }
  .layer canvas { image-rendering: pixelated; margin: 1px; border: 1px solid #ddd; }
  label.field { display: block; margin: .3em 0; }
  label.field span { display: inline-block; width: 9em; }
  textarea { width: 320px; height: 120px; font-family: monospace; }
</style>
</head>
<body>
<h1>jaxdl serve</h1>
<div id="run">loading...</div>
<main>
  <section id="input"><h2>Input</h2></section>
  <section><h2>Prediction</h2><div id="predicted"></div><div id="message"></div><div id="bars"></div>
    <div class="row"><label><input type="checkbox" id="explain"> explain (why this answer?)</label></div>
    <div id="why"></div></section>
  <section><h2>Hidden layers</h2><div id="layers"></div></section>
</main>
<script>
"use strict";
let info = null, busy = false, again = false, makeInput = null;
window.lastInput = null;
window.lastWhy = null;
window.idle = () => !busy && !again;

function el(tag, attrs = {}, parent = null) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value; else node.setAttribute(key, value);
  }
  if (parent) parent.appendChild(node);
  return node;
}

async function post(path, input) {
  const response = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                                      body: JSON.stringify({inputs: [input], top_k: info.class_names.length || 1})});
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}

// One request at a time; a change made meanwhile is sent when the answer is in.
async function update() {
  if (busy) { again = true; return; }
  const input = makeInput();
  if (input === null) return;
  busy = true;
  try {
    const explain = document.getElementById("explain").checked;
    const [prediction, activations, why] = await Promise.all([post("/predict", input), post("/activations", input),
                                                              explain ? post("/explain", input) : null]);
    window.lastInput = input;
    showPrediction(prediction.predictions[0]);
    showLayers(activations.layers);
    showWhy(why);
    document.getElementById("message").textContent = "";
  } catch (error) {
    document.getElementById("message").textContent = String(error.message || error);
  } finally {
    busy = false;
    if (again) { again = false; update(); }
  }
}

function showPrediction(row) {
  const bars = document.getElementById("bars");
  bars.innerHTML = "";
  if (!("predicted" in row)) {
    const outputs = Object.entries(row).filter(([key]) => key.startsWith("output"));
    document.getElementById("predicted").textContent = outputs.map(([k, v]) => `${k} ${v.toFixed(4)}`).join(", ");
    return;
  }
  document.getElementById("predicted").textContent = `${row.predicted} (${(100 * row.probability).toFixed(1)}%)`;
  const probability = {[row.predicted]: row.probability};
  for (let rank = 2; `class_${rank}` in row; rank++) probability[row[`class_${rank}`]] = row[`probability_${rank}`];
  for (const name of info.class_names) {
    const p = probability[name] || 0;
    const bar = el("div", {class: name === row.predicted ? "bar top" : "bar"}, bars);
    el("span", {class: "name", text: name}, bar);
    const track = el("span", {class: "track"}, bar);
    el("div", {class: "fill", style: `width: ${(100 * p).toFixed(1)}%`}, track);
    el("span", {class: "value", text: p.toFixed(3)}, bar);
  }
}

// A grid of values as a picture: orange for positive, blue for negative, scaled by the largest |value|.
function drawGrid(rows, scale, parent) {
  const height = rows.length, width = rows[0].length;
  const canvas = el("canvas", {width: width, height: height}, parent);
  canvas.style.width = `${width * scale}px`;
  canvas.style.height = `${height * scale}px`;
  let top = 1e-12;
  for (const row of rows) for (const v of row) top = Math.max(top, Math.abs(v));
  const context = canvas.getContext("2d"), image = context.createImageData(width, height);
  for (let i = 0; i < height; i++) for (let j = 0; j < width; j++) {
    const v = rows[i][j] / top, k = 4 * (i * width + j);
    const [r, g, b] = v >= 0 ? [255, 255 - 120 * v, 255 - 255 * v] : [255 + 200 * v, 255 + 130 * v, 255];
    image.data.set([r, g, b, 255], k);
  }
  context.putImageData(image, 0, 0);
}

function showLayers(layers) {
  const box = document.getElementById("layers");
  box.innerHTML = "";
  for (const layer of layers) {
    const div = el("div", {class: "layer"}, box);
    el("div", {class: "title", text: `${layer.name}  (${layer.shape.join(" x ")})`}, div);
    if (layer.kind === "maps") {
      const scale = Math.max(2, Math.floor(48 / layer.values[0].length));
      for (const map of layer.values) drawGrid(map, scale, div);
    } else if (layer.kind === "matrix") {
      drawGrid(layer.values, Math.max(2, Math.floor(256 / layer.values[0].length)), div);
    } else {
      const values = layer.values, width = Math.min(values.length, 32), rows = [];
      for (let start = 0; start < values.length; start += width) {
        const row = values.slice(start, start + width);
        while (row.length < width) row.push(0);
        rows.push(row);
      }
      drawGrid(rows, 10, div);
    }
  }
}

// Why: the /explain answer (null: explain is off). Attributions are red where the input pushed the answer up.
function showWhy(answer) {
  const box = document.getElementById("why"), overlay = document.getElementById("whymap");
  box.innerHTML = "";
  const row = answer ? answer.explanations[0] : null;
  window.lastWhy = row;
  if (overlay) overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
  if (!row) return;
  el("div", {class: "note", text: `integrated gradients of ${answer.explained} (${answer.steps} steps; completeness ` +
             `gap ${(100 * row.completeness_gap).toFixed(2)}%)`}, box);
  if (row.top_features) {
    el("div", {text: row.sentence}, box);
    for (const f of row.top_features) {
      const sign = f.contribution >= 0 ? "+" : "";
      el("div", {class: `feature ${sign ? "up" : "down"}`,
                 text: `${sign}${f.contribution.toFixed(4)}  ${f.feature} = ${f.value}`}, box);
    }
  } else if (overlay) {
    drawOverlay(overlay, row.attributions);
  } else {
    const steps = row.attributions.map((step) => [step].flat(Infinity).reduce((a, b) => a + b, 0));
    drawGrid([steps], Math.max(2, Math.floor(320 / steps.length)), box);
  }
}

// An image's attributions (height x width x channels), summed per pixel, as a see-through map over the pad.
function drawOverlay(canvas, attributions) {
  const height = attributions.length, width = attributions[0].length;
  const sums = attributions.map((line) => line.map((pixel) => pixel.reduce((a, b) => a + b, 0)));
  let top = 1e-12;
  for (const line of sums) for (const v of line) top = Math.max(top, Math.abs(v));
  const context = canvas.getContext("2d"), image = context.createImageData(width, height);
  for (let i = 0; i < height; i++) for (let j = 0; j < width; j++) {
    const v = sums[i][j] / top, colour = v >= 0 ? [214, 39, 40] : [31, 119, 180];
    image.data.set([...colour, Math.round(217 * Math.abs(v))], 4 * (i * width + j));
  }
  context.putImageData(image, 0, 0);
}

function imageInput(box) {
  const [height, width, channels] = info.input_shape;
  const frame = el("div", {id: "frame"}, box);
  const size = 280, pad = el("canvas", {id: "pad", width: size, height: size}, frame);
  el("canvas", {id: "whymap", width: width, height: height}, frame);
  const context = pad.getContext("2d");
  const clear = () => { context.fillStyle = "#000"; context.fillRect(0, 0, size, size); };
  clear();
  context.strokeStyle = "#fff";
  context.lineCap = context.lineJoin = "round";
  context.lineWidth = Math.max(6, 1.3 * size / Math.min(height, width));
  const small = el("canvas", {id: "small", width: width, height: height}, box);
  let drawing = false, last = null;
  const at = (event) => {
    const r = pad.getBoundingClientRect();
    return [event.clientX - r.left, event.clientY - r.top];
  };
  pad.addEventListener("pointerdown", (event) => { drawing = true; last = at(event); stroke(last); });
  pad.addEventListener("pointermove", (event) => { if (drawing) stroke(at(event)); });
  window.addEventListener("pointerup", () => { if (drawing) { drawing = false; update(); } });
  function stroke(point) {
    context.beginPath(); context.moveTo(last[0], last[1]); context.lineTo(point[0], point[1]); context.stroke();
    last = point;
    update();
  }
  const controls = el("div", {class: "row"}, box);
  el("button", {id: "clear", text: "Clear"}, controls).addEventListener("click", () => { clear(); update(); });
  const file = el("input", {id: "file", type: "file", accept: "image/*"}, controls);
  const invertLabel = el("label", {text: " invert"}, controls);
  const invert = el("input", {id: "invert", type: "checkbox"}, invertLabel);
  invertLabel.prepend(invert);
  file.addEventListener("change", () => {
    if (!file.files.length) return;
    const picture = new Image();
    picture.onload = () => {
      context.drawImage(picture, 0, 0, size, size);  // stretched, as the folder: builder resizes
      if (invert.checked) {
        const data = context.getImageData(0, 0, size, size);
        for (let k = 0; k < data.data.length; k++) if (k % 4 !== 3) data.data[k] = 255 - data.data[k];
        context.putImageData(data, 0, 0);
      }
      update();
    };
    picture.src = URL.createObjectURL(file.files[0]);
  });
  el("div", {class: "row", text: `light on dark, averaged to ${height} x ${width} uint8 pixels 0..255`}, box);
  // Each stored pixel is the mean of its block of the canvas (gray: Pillow's "L" weights).
  return () => {
    const data = context.getImageData(0, 0, size, size).data, rows = [];
    const preview = small.getContext("2d").createImageData(width, height);
    for (let i = 0; i < height; i++) {
      const row = [];
      const y0 = Math.floor(i * size / height), y1 = Math.floor((i + 1) * size / height);
      for (let j = 0; j < width; j++) {
        const x0 = Math.floor(j * size / width), x1 = Math.floor((j + 1) * size / width);
        const sum = [0, 0, 0];
        for (let y = y0; y < y1; y++) {
          for (let x = x0; x < x1; x++) for (let c = 0; c < 3; c++) sum[c] += data[4 * (y * size + x) + c];
        }
        const mean = sum.map((s) => s / ((y1 - y0) * (x1 - x0)));
        const pixel = channels === 3 ? mean.map(Math.round)
          : [Math.round((mean[0] * 299 + mean[1] * 587 + mean[2] * 114) / 1000)];
        row.push(pixel);
        const shown = channels === 3 ? pixel : [pixel[0], pixel[0], pixel[0]];
        preview.data.set([...shown, 255], 4 * (i * width + j));
      }
      rows.push(row);
    }
    small.getContext("2d").putImageData(preview, 0, 0);
    return rows;
  };
}

function tableInput(box) {
  const form = el("form", {id: "features"}, box);
  const fields = {};
  for (const column of info.columns) {
    const label = el("label", {class: "field"}, form);
    el("span", {text: column.name}, label);
    let field;
    if (column.kind === "numeric") {
      field = el("input", {type: "number", step: "any", name: column.name, placeholder: "missing"}, label);
    } else {
      field = el("select", {name: column.name}, label);
      el("option", {value: "", text: "(missing)"}, field);
      for (const category of column.categories) el("option", {value: category, text: category}, field);
    }
    field.addEventListener("input", update);
    fields[column.name] = field;
  }
  form.addEventListener("submit", (event) => { event.preventDefault(); update(); });
  const cell = (field) => field.value === "" ? null : field.value;
  return () => Object.fromEntries(Object.entries(fields).map(([name, field]) => [name, cell(field)]));
}

function valuesInput(box) {
  const shape = info.input_shape, count = shape.reduce((a, b) => a * b, 1);
  const hint = `${count} numbers (shape ${shape.join(" x ")}), separated by spaces, commas or lines`;
  el("div", {class: "row", text: hint}, box);
  const text = el("textarea", {id: "values"}, box);
  text.addEventListener("input", update);
  return () => {
    const numbers = text.value.split(/[\s,;]+/).filter((s) => s.length).map(Number);
    const message = document.getElementById("message");
    if (numbers.length !== count || numbers.some(Number.isNaN)) {
      message.textContent = `${numbers.length} numbers typed, ${count} needed`;
      return null;
    }
    const nest = (flat, dims) => dims.length === 1 ? flat : Array.from({length: dims[0]}, (_, i) => {
      const step = flat.length / dims[0];
      return nest(flat.slice(i * step, (i + 1) * step), dims.slice(1));
    });
    return nest(numbers, shape);
  };
}

async function start() {
  info = await (await fetch("/info")).json();
  const kind = info.stored.kind || "array";
  document.getElementById("run").textContent =
    `${info.workdir} (${info.model}): ${info.task}, inputs ${info.input_shape.join(" x ")} (${kind})`;
  const box = document.getElementById("input");
  const image = info.stored.dtype === "uint8" && info.input_shape.length === 3 && [1, 3].includes(info.input_shape[2]);
  makeInput = image ? imageInput(box) : kind === "table" ? tableInput(box) : valuesInput(box);
  document.getElementById("explain").addEventListener("change", update);
  document.body.dataset.ready = "1";
}
start();
</script>
</body>
</html>
"""
