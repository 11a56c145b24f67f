// The demo page: upload once, then filter and draw client-side. No framework, no build step.
import { decodeRle, maskIndices } from "./rle.js";

// Exposed so a test can compare this decoder with pycocotools, pixel for pixel.
window.decodeRle = decodeRle;

const KEY_STORAGE = "maskrcnn.apiKey";
// Ask for everything once (threshold 0, the most the API allows); the slider then only filters what came back.
const DETECT_URL = "/detect?score_threshold=0&max_detections=100";
const ALPHA = 0.45;

const $ = (id) => document.getElementById(id);
const state = {
  file: null, // the last image chosen, re-sent only when the API key changes
  base: null, // ImageData of the image alone; every redraw starts from a copy of it
  detections: [], // API detections, each with `pixels`: the row-major indices of its mask
  hiddenCategories: new Set(),
  hovered: null,
  request: 0, // only the answer to the latest upload is drawn
};

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// ---- API ----

function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORAGE);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** fetch that throws ApiError with the server's {"error": {code, message}} on any non-2xx answer. */
async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: authHeaders() });
  if (response.ok) return response.json();
  let { code, message } = { code: `http_${response.status}`, message: response.statusText || "request failed" };
  try {
    ({ code, message } = (await response.json()).error);
  } catch {
    // not our JSON error shape (a proxy's page, say): keep the status line
  }
  throw new ApiError(response.status, code, message);
}

// ---- status line ----

function setStatus(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.title = text; // the line is cut to one row; the full text stays available on hover
  status.classList.toggle("error", isError);
}

function showError(error) {
  if (error instanceof ApiError && error.status === 401) {
    setStatus("An API key is needed: enter this server's key above.", true);
  } else if (error instanceof ApiError) {
    setStatus(`${error.message} (${error.code})`, true);
  } else {
    setStatus(`Could not reach the server: ${error.message}`, true);
  }
}

// ---- colours (the same golden-ratio hues as service/visualize.py) ----

function color(categoryId) {
  const h = (categoryId * 0.618033988749895) % 1;
  const [s, v] = [0.75, 1];
  const i = Math.floor(h * 6);
  const f = h * 6 - i;
  const [p, q, t] = [v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))];
  const rgb = [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][i % 6];
  return rgb.map((c) => Math.floor(c * 255));
}

const css = ([r, g, b]) => `rgb(${r} ${g} ${b})`;

// ---- model card ----

async function loadModel() {
  try {
    const model = await api("/v1/model");
    const names = model.classes.map((c) => c.name).join(", ");
    $("model").textContent = `Model ${model.name} on ${model.device} detects ${model.classes.length} classes: ${names}.`;
    showDescription($("model-description"), model.description ?? "");
    renderCategories(model.classes);
    if (!state.file) setStatus("Choose an image to detect objects in it.");
  } catch (error) {
    $("model").textContent = "Model card unavailable.";
    showError(error);
  }
}

function renderCategories(classes) {
  const fieldset = $("categories");
  fieldset.replaceChildren(Object.assign(document.createElement("legend"), { textContent: "Classes" }));
  for (const { id, name } of classes) {
    const box = Object.assign(document.createElement("input"), { type: "checkbox", value: id });
    box.checked = !state.hiddenCategories.has(id);
    box.addEventListener("change", () => {
      if (box.checked) state.hiddenCategories.delete(id);
      else state.hiddenCategories.add(id);
      render();
    });
    const swatch = Object.assign(document.createElement("span"), { className: "swatch" });
    swatch.style.background = css(color(id));
    const label = document.createElement("label");
    label.append(box, swatch, name);
    fieldset.append(label);
  }
}

// ---- detect ----

async function detect(file) {
  const request = ++state.request;
  state.file = file;
  setStatus(`Detecting in ${file.name}…`);
  const form = new FormData();
  form.append("image", file);
  try {
    // The browser decodes the image for the canvas while the server runs the model.
    const [result, bitmap] = await Promise.all([api(DETECT_URL, { method: "POST", body: form }), imageBitmap(file)]);
    if (request !== state.request) return;
    show(result, bitmap);
    setStatus(`${file.name}: ${result.detections.length} detections in ${result.timing_ms.total.toFixed(0)} ms.`);
  } catch (error) {
    if (request === state.request) showError(error);
  }
}

async function imageBitmap(file) {
  try {
    return await createImageBitmap(file, { imageOrientation: "from-image" }); // EXIF applied, as the server does
  } catch {
    return null; // the server may still read what this browser cannot; the masks are drawn on grey then
  }
}

/** Keep a result: the image's pixels as the base layer and every mask decoded once. */
function show(result, bitmap) {
  const { width, height } = result.image;
  const canvas = $("overlay");
  Object.assign(canvas, { width, height, hidden: false });
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#808080";
  ctx.fillRect(0, 0, width, height);
  if (bitmap) ctx.drawImage(bitmap, 0, 0, width, height);
  state.base = ctx.getImageData(0, 0, width, height);
  state.hovered = null;
  state.detections = result.detections.map((det) => ({
    ...det,
    pixels: det.segmentation ? maskIndices(decodeRle(det.segmentation.counts, height, width)) : new Uint32Array(),
  }));
  $("detections").hidden = false;
  render();
}

/** Fetch the server's sample image (a synthetic shapes scene) and detect in it like an uploaded file. */
async function detectSample() {
  try {
    const response = await fetch("/v1/sample", { headers: authHeaders() });
    if (!response.ok) throw new ApiError(response.status, `http_${response.status}`, "no sample image");
    const blob = await response.blob();
    detect(new File([blob], "sample.png", { type: "image/png" }));
  } catch (error) {
    showError(error);
  }
}

// ---- filter and draw ----

function threshold() {
  return Number($("threshold").value);
}

function visibleDetections() {
  const min = threshold();
  return state.detections.filter((d) => d.score >= min && !state.hiddenCategories.has(d.category_id));
}

function render() {
  $("threshold-value").textContent = threshold().toFixed(2);
  if (!state.base) return;
  const visible = visibleDetections();
  renderTable(visible);
  drawOverlay(visible);
  $("summary").textContent = `Showing ${visible.length} of ${state.detections.length} detections.`;
}

function renderTable(visible) {
  const rows = visible.map((det, i) => {
    const row = document.createElement("tr");
    row.tabIndex = 0; // keyboard users highlight a mask by focusing its row
    const swatch = Object.assign(document.createElement("span"), { className: "swatch" });
    swatch.style.background = css(color(det.category_id));
    const label = document.createElement("td");
    label.append(swatch, ` ${det.label}`);
    const cells = [String(i + 1), det.score.toFixed(3), det.bbox.map((v) => v.toFixed(1)).join(", ")];
    const [index, score, box] = cells.map((text) => Object.assign(document.createElement("td"), { textContent: text }));
    row.append(index, label, score, box);
    const highlight = (target) => () => {
      state.hovered = target;
      drawOverlay(visibleDetections()); // the table stays as it is, so focus is not lost
    };
    row.addEventListener("mouseenter", highlight(det));
    row.addEventListener("focus", highlight(det));
    row.addEventListener("mouseleave", highlight(null));
    row.addEventListener("blur", highlight(null));
    return row;
  });
  $("detections").tBodies[0].replaceChildren(...rows);
}

/** Blend each visible mask over the image (best drawn last, on top), then boxes and `label score`. */
function drawOverlay(visible) {
  const canvas = $("overlay");
  const ctx = canvas.getContext("2d");
  const out = new ImageData(new Uint8ClampedArray(state.base.data), state.base.width, state.base.height);
  for (const det of [...visible].reverse()) {
    const alpha = state.hovered === null ? ALPHA : det === state.hovered ? 0.75 : 0.12;
    blend(out.data, det.pixels, color(det.category_id), alpha);
  }
  ctx.putImageData(out, 0, 0);
  // Lines and text are sized in screen pixels: CSS scales the canvas to its column, up or down.
  const scale = canvas.width / (canvas.clientWidth || canvas.width);
  for (const det of visible) {
    if (state.hovered === null || det === state.hovered) drawBox(ctx, det, scale, det === state.hovered);
  }
}

function blend(data, pixels, [r, g, b], alpha) {
  for (const i of pixels) {
    const o = i * 4;
    data[o] = data[o] * (1 - alpha) + r * alpha;
    data[o + 1] = data[o + 1] * (1 - alpha) + g * alpha;
    data[o + 2] = data[o + 2] * (1 - alpha) + b * alpha;
  }
}

function drawBox(ctx, det, scale, strong) {
  const [x, y, w, h] = det.bbox;
  const rgb = css(color(det.category_id));
  ctx.lineWidth = (strong ? 4 : 2) * scale;
  ctx.strokeStyle = rgb;
  ctx.strokeRect(x, y, w, h);
  const text = `${det.label} ${det.score.toFixed(2)}`;
  const size = Math.round(13 * scale);
  ctx.font = `${size}px system-ui, sans-serif`;
  const textWidth = ctx.measureText(text).width;
  const top = Math.max(y - size - 4 * scale, 0);
  ctx.fillStyle = rgb;
  ctx.fillRect(x, top, textWidth + 6 * scale, size + 4 * scale);
  ctx.fillStyle = "#000";
  ctx.textBaseline = "top";
  ctx.fillText(text, x + 3 * scale, top + 2 * scale);
}

// ---- wiring ----

function onKeyChange(event) {
  const key = event.target.value.trim();
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
  loadModel();
  if (state.file) detect(state.file); // the last attempt may have been refused for want of the key
}

function wireDrop() {
  const zone = $("drop");
  // Listen on the whole page: a file dropped just beside the zone must not make the browser navigate to it.
  document.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  document.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    const file = event.dataTransfer?.files?.[0];
    if (file) detect(file);
  });
}

function main() {
  const keyInput = $("api-key");
  keyInput.value = sessionStorage.getItem(KEY_STORAGE) ?? "";
  keyInput.addEventListener("change", onKeyChange);
  $("file").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) detect(file);
  });
  $("sample").addEventListener("click", detectSample);
  $("threshold").addEventListener("input", render);
  // Redraw when the displayed size changes (rotation, window resize), so labels keep their screen size.
  new ResizeObserver(() => state.base && drawOverlay(visibleDetections())).observe($("overlay"));
  wireDrop();
  render();
  loadModel();
}

main();

// The model card's description marks commands with `backticks`: show them as <code>, as text nodes only
// (never innerHTML: the description comes from the server).
function showDescription(element, text) {
  element.replaceChildren(
    ...text.split("`").map((part, i) => {
      if (i % 2 === 0) return document.createTextNode(part);
      const code = document.createElement("code");
      code.textContent = part;
      return code;
    }),
  );
}
