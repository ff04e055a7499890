"""The playground page's JavaScript (see `jaxdl.playground.page`): settings in the URL's hash, one
session per tab, a play loop that asks for the next compiled chunk when the last one is drawn."""

SCRIPT = r"""
const FEATURES = ["x1", "x2", "x1_squared", "x2_squared", "x1_times_x2", "sin_x1", "sin_x2"];
const NAMES = {x1: "x\u2081", x2: "x\u2082", x1_squared: "x\u2081\u00b2", x2_squared: "x\u2082\u00b2",
               x1_times_x2: "x\u2081\u00b7x\u2082", sin_x1: "sin x\u2081", sin_x2: "sin x\u2082"};
const DATASETS = ["circle", "xor", "gaussian", "spiral", "plane", "multi_gaussian"];
const CHOICES = {learning_rate: [0.00001, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10],
                 activation: ["relu", "tanh", "sigmoid", "linear"], regularization: ["none", "L1", "L2"],
                 regularization_rate: [0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10], optimizer: ["sgd", "adam"]};
const MEMBER_COLOURS = ["#183d4e", "#f59322", "#0877bd", "#5a9e3a", "#b0306a", "#7b5ea7", "#999", "#c8a400"];
const UPDATE_WINDOW = 20, W = 8;
const $ = id => document.getElementById(id);
let settings = null, session = null, playing = false, loopDone = null, regression = false;
let points = [], labels = [""], curve = [], memberCurves = [], updates = 0, stamps = [], wires = [], lastView = null;

function colour(v) {  // v in [-1, 1]: orange (negative) - white - blue (positive), as the playground
  const t = Math.min(1, Math.abs(v)), c = v < 0 ? [245, 147, 34] : [8, 119, 189];
  return c.map(x => Math.round(255 + (x - 255) * t));
}
const LUT = Array.from({length: 256}, (_, i) => colour(i / 127.5 - 1));
const scratch = {};
function paint(canvas, bytes, offset, n) {
  const off = scratch[n] || (scratch[n] = document.createElement("canvas"));
  off.width = off.height = n;
  const octx = off.getContext("2d"), img = octx.createImageData(n, n);
  for (let i = 0; i < n * n; i++) {
    const c = LUT[bytes[offset + i]];
    img.data[4 * i] = c[0]; img.data[4 * i + 1] = c[1]; img.data[4 * i + 2] = c[2]; img.data[4 * i + 3] = 255;
  }
  octx.putImageData(img, 0, 0);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
}
function bytesOf(b64) {
  const s = atob(b64), a = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) a[i] = s.charCodeAt(i);
  return a;
}
function drawPoints(canvas, extent) {
  const ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height, r = Math.max(1.5, w / 110);
  for (const [x1, x2, t, train] of points) {
    ctx.beginPath();
    ctx.arc((x1 + extent) / (2 * extent) * w, (extent - x2) / (2 * extent) * h, r, 0, 2 * Math.PI);
    const c = colour(regression ? t : 2 * t - 1);
    ctx.fillStyle = `rgb(${c})`; ctx.fill();
    ctx.strokeStyle = train ? "#fff" : "#000"; ctx.lineWidth = 1; ctx.stroke();
  }
}
function drawCurves(canvas, lines, colours) {
  const ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const all = lines.flat().filter(p => isFinite(p[1]));
  if (!all.length) return;
  const last = Math.max(1, ...all.map(p => p[0])), top = Math.max(1e-6, ...all.map(p => p[1]));
  lines.forEach((line, i) => {
    ctx.beginPath(); ctx.strokeStyle = colours[i]; ctx.lineWidth = 1.5;
    line.forEach(([e, v], j) => {
      const x = e / last * w, y = h - Math.min(v, top) / top * (h - 4) - 2;
      j ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
    });
    ctx.stroke();
  });
}

async function api(path, body, method = "POST") {
  const response = await fetch(path, {method, headers: {"content-type": "application/json"},
                                      body: JSON.stringify(body || {})});
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
  return answer;
}
function showError(error) { $("error").textContent = error ? `error: ${error.message || error}` : ""; }

function settingsFromHash() {
  const query = new URLSearchParams(location.hash.slice(1)), fields = {};
  for (const [key, value] of query) fields[key] = value;  // the server checks and completes them
  return fields;
}
let pending = 0;  // requests that change the settings, on their way (the browser test waits for 0)
function busy(delta) { pending += delta; document.body.dataset.pending = pending; }
async function apply(fields) {
  const wasPlaying = playing;
  busy(+1);
  await pause();
  try {
    opened(await api(session ? `/api/session/${session}/settings` : "/api/session", fields));
    showError(null);
  } catch (error) { showError(error); }
  busy(-1);
  if (wasPlaying) play();
}
function change(field, value) { apply({...settings, [field]: value}); }
function opened(answer) {
  session = answer.session; settings = answer.settings; points = answer.points; regression = answer.regression;
  labels = answer.labels;
  window.history.replaceState(null, "", "#" + answer.query);
  curve = []; memberCurves = labels.map(() => []);
  showControls(); buildNetwork(); buildMembers(); render(answer.view);
}

function showControls() {
  for (const field of Object.keys(CHOICES)) {
    const select = $(field);
    if (!select.options.length) {
      for (const value of CHOICES[field]) select.add(new Option(String(value), String(value)));
      const numeric = typeof CHOICES[field][0] === "number";
      select.onchange = () => change(field, numeric ? Number(select.value) : select.value);
    }
    select.value = String(settings[field]);
  }
  for (const field of ["train_percent", "noise", "batch_size", "seed"]) {
    $(field).value = settings[field];
    if ($(field + "_value")) $(field + "_value").textContent = settings[field];
    $(field).onchange = () => change(field, Number($(field).value));
  }
  const box = $("datasets");
  if (!box.children.length) {
    for (const name of DATASETS) {
      const button = document.createElement("button");
      button.textContent = name.replace("_", " "); button.dataset.dataset = name;
      button.onclick = () => change("dataset", name);
      box.appendChild(button);
    }
  }
  for (const button of box.children) button.classList.toggle("active", button.dataset.dataset === settings.dataset);
  $("layer_count").textContent = settings.hidden.length;
}

function node(tile, label, classes) {
  const div = document.createElement("div");
  div.className = "node " + classes;
  if (label) { const span = document.createElement("span"); span.textContent = label; div.appendChild(span); }
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 40; canvas.dataset.tile = tile;
  div.appendChild(canvas);
  return div;
}
function column(head) {
  const div = document.createElement("div");
  div.className = "column";
  const top = document.createElement("div");
  top.className = "head"; top.innerHTML = head;
  div.appendChild(top);
  $("network").appendChild(div);
  return div;
}
function buildNetwork() {
  const net = $("network");
  net.querySelectorAll(".column").forEach(c => c.remove());
  const inputs = column("Features");
  const sources = [];
  FEATURES.forEach((name, slot) => {
    const active = settings.features.includes(name);
    const div = node(slot, NAMES[name], "feature" + (active ? " active" : ""));
    div.dataset.feature = name;
    div.onclick = () => {
      const features = active ? settings.features.filter(f => f !== name) : [...settings.features, name];
      if (features.length) change("features", features);
    };
    inputs.appendChild(div);
    if (active) sources.push({element: div.querySelector("canvas"), slot});
  });
  let previous = sources;
  wires = [];
  settings.hidden.forEach((width, layer) => {
    const col = column(`<button class="add_neuron" data-layer="${layer}">+</button> ` +
                       `<button class="remove_neuron" data-layer="${layer}">&minus;</button><br>${width} neurons`);
    col.querySelector(".add_neuron").onclick = () => resize(layer, +1);
    col.querySelector(".remove_neuron").onclick = () => resize(layer, -1);
    const current = [];
    for (let j = 0; j < width; j++) {
      const div = node(W + layer * W + j, "", "neuron");
      col.appendChild(div);
      const element = div.querySelector("canvas");
      for (const source of previous) {
        wires.push({from: source.element, to: element, weight: v => v.weights.hidden[layer][source.slot][j]});
      }
      current.push({element, slot: j});
    }
    previous = current;
  });
  const out = column("Output");
  const div = node("output", "", "out");
  out.appendChild(div);
  const target = div.querySelector("canvas");
  for (const source of previous) {
    wires.push({from: source.element, to: target, weight: v => v.weights.output[source.slot]});
  }
  layoutWires();
}
function layoutWires() {
  const svg = $("wires"), box = $("network").getBoundingClientRect();
  svg.setAttribute("width", box.width); svg.setAttribute("height", box.height);
  svg.innerHTML = "";
  for (const wire of wires) {
    const a = wire.from.getBoundingClientRect(), b = wire.to.getBoundingClientRect();
    const line = document.createElementNS("http://www.w3.org/2000/svg", "path");
    const x1 = a.right - box.left, y1 = a.top + a.height / 2 - box.top;
    const x2 = b.left - box.left, y2 = b.top + b.height / 2 - box.top;
    const mid = (x1 + x2) / 2;
    line.setAttribute("d", `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`);
    line.setAttribute("fill", "none");
    svg.appendChild(line);
    wire.line = line;
  }
  if (lastView) paintWires(lastView);  // after a resize, with the weights last shown
}
function paintWires(view) {
  for (const wire of wires) {
    const w = wire.weight(view);
    wire.line.setAttribute("stroke", `rgb(${colour(Math.max(-1, Math.min(1, w)))})`);
    wire.line.setAttribute("stroke-width", Math.min(4, 0.3 + 0.8 * Math.abs(w)).toFixed(2));
  }
}
function resize(layer, delta) {
  const hidden = [...settings.hidden];
  hidden[layer] = Math.min(8, Math.max(1, hidden[layer] + delta));
  change("hidden", hidden);
}
function buildMembers() {
  const box = $("members");
  box.innerHTML = "";
  if (labels.length < 2) return;
  labels.forEach((label, i) => {
    const div = document.createElement("div");
    div.className = "member";
    div.innerHTML = `<canvas width="140" height="140" style="border-color:${MEMBER_COLOURS[i]}"></canvas>` +
                    `${label}<br><span class="loss">-</span>`;
    box.appendChild(div);
  });
}

function render(view) {
  const first = view.members[0];
  $("epoch").textContent = view.epoch;
  $("test_loss").textContent = first.test_loss.toFixed(3);
  $("train_loss").textContent = first.train_loss.toFixed(3);
  $("per_update").textContent = view.epochs;
  curve.push([view.epoch, first.train_loss, first.test_loss]);
  view.members.forEach((m, i) => memberCurves[i] && memberCurves[i].push([view.epoch, m.test_loss]));
  const output = bytesOf(first.output);
  paint($("output"), output, 0, view.grid);
  drawPoints($("output"), view.extent);
  const tiles = bytesOf(view.tiles), size = view.tile_grid * view.tile_grid;
  for (const canvas of document.querySelectorAll("#network canvas[data-tile]")) {
    if (canvas.dataset.tile === "output") paint(canvas, output, 0, view.grid);
    else paint(canvas, tiles, Number(canvas.dataset.tile) * size, view.tile_grid);
  }
  lastView = view;
  paintWires(view);
  drawCurves($("curve"), [curve.map(p => [p[0], p[2]]), curve.map(p => [p[0], p[1]])], ["#333", "#aaa"]);
  if (labels.length > 1) {
    const canvases = document.querySelectorAll("#members canvas"), losses = document.querySelectorAll("#members .loss");
    view.members.forEach((m, i) => {
      paint(canvases[i], bytesOf(m.output), 0, view.grid);
      drawPoints(canvases[i], view.extent);
      losses[i].textContent = `test ${m.test_loss.toFixed(3)}`;
    });
    drawCurves($("compare_curves"), memberCurves, MEMBER_COLOURS);
  }
  updates += 1;
  $("updates").textContent = updates;
  stamps.push(performance.now());
  if (stamps.length > UPDATE_WINDOW) stamps.shift();
  if (stamps.length > 1) $("rate").textContent = ((stamps.length - 1) / (stamps.at(-1) - stamps[0]) * 1000).toFixed(1);
}

async function loop() {
  while (playing) {
    try { render((await api(`/api/session/${session}/step`, {epochs: null})).view); }
    catch (error) { showError(error); playing = false; }
  }
  $("play").innerHTML = "&#9654;";
}
function play() {
  if (playing || !session) return;
  playing = true; stamps = [];
  $("play").innerHTML = "&#10074;&#10074;";
  loopDone = loop();
}
async function pause() { playing = false; if (loopDone) await loopDone; }

$("play").onclick = () => playing ? pause() : play();
$("step").onclick = async () => {
  await pause();
  try { render((await api(`/api/session/${session}/step`, {epochs: 1})).view); } catch (e) { showError(e); }
};
$("reset").onclick = async () => {
  await pause();
  try {
    const answer = await api(`/api/session/${session}/reset`, {});
    curve = []; memberCurves = labels.map(() => []);
    render(answer.view);
  } catch (e) { showError(e); }
};
$("add_layer").onclick = () => { if (settings.hidden.length < 6) change("hidden", [...settings.hidden, 2]); };
$("remove_layer").onclick = () => { if (settings.hidden.length) change("hidden", settings.hidden.slice(0, -1)); };
async function compare(body) {
  const wasPlaying = playing;
  busy(+1);
  await pause();
  try { opened(await api(`/api/session/${session}/compare`, body)); showError(null); } catch (e) { showError(e); }
  busy(-1);
  if (wasPlaying) play();
}
$("compare").onclick = () => compare({vary: $("compare_vary").value, values: $("compare_values").value});
$("compare_off").onclick = () => compare({vary: null});
$("save").onclick = async () => {
  $("save_status").textContent = "saving...";
  try {
    const answer = await api(`/api/session/${session}/save`, {name: $("run_name").value});
    const loss = answer.test.loss.toFixed(3);
    $("save_status").textContent = `saved ${answer.workdir} (epoch ${answer.epochs}, test loss ${loss})`;
  } catch (e) { $("save_status").textContent = `error: ${e.message}`; }
};
window.addEventListener("hashchange", () => apply(settingsFromHash()));
window.addEventListener("resize", layoutWires);
window.addEventListener("pagehide", () => {
  if (session) fetch(`/api/session/${session}`, {method: "DELETE", keepalive: true});
});
apply(settingsFromHash());
"""
