// The studio page: uploads, one job at a time per tab, progress over server-sent events.
const $ = (id) => document.getElementById(id);
const page = {
  photo: { demo: true },      // what the server calls the photo: never a path
  paintings: [],              // {ref, name, checked}
  models: {},                 // name -> style names
  job: null,                  // the running job's id
  jobKind: null,              // its engine, and whether it refines a one-pass picture
  onePass: null,              // the last finished one-pass job {id, maxDim}: what Refine starts from
  events: null,               // its EventSource
  debounce: null,
};

function engine() {
  return document.querySelector("input[name=engine]:checked").value;
}

function showPicture(src) {  // the first picture replaces the drawn placeholder
  $("result").src = src;
  $("result").hidden = false;
  $("placeholder").hidden = true;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
  if (!response.ok) throw new Error(body.error || `${response.status}`);
  return body;
}

async function upload(file) {
  return api("/api/uploads", {
    method: "POST",
    headers: { "Content-Type": file.type && file.type.startsWith("image/") ? file.type : "application/octet-stream" },
    body: file,
  });
}

// --- inputs ---

async function setPhoto(file) {
  showError("");
  $("status").textContent = `Uploading ${file.name}...`;
  try {
    const added = await upload(file);
    page.photo = { upload: added.id };
    $("photo-thumb").src = URL.createObjectURL(file);
    $("photo-thumb").hidden = false;
    $("photo-name").textContent = `${file.name}: ${added.width} x ${added.height} px`;
    $("status").textContent = "Photo ready.";
  } catch (error) {
    showError(`${file.name}: ${error.message}`);
    $("status").textContent = "The photo was not accepted; the previous one is still in use.";
  }
}

function renderPaintings() {
  const box = $("paintings");
  box.replaceChildren();
  page.paintings.forEach((painting, index) => {
    const label = document.createElement("label");
    const check = document.createElement("input");
    check.type = "checkbox";
    check.className = "painting";
    check.checked = painting.checked;
    check.dataset.index = index;
    check.addEventListener("change", () => { painting.checked = check.checked; renderBlend(); });
    label.append(check, " ", painting.name);
    box.append(label);
  });
  renderBlend();
}

function chosenPaintings() {
  return page.paintings.filter((p) => p.checked);
}

function slider(id, label, flag) {
  const wrap = document.createElement("label");
  const input = document.createElement("input");
  Object.assign(input, { type: "range", min: 0, max: 1, step: 0.05, value: 1, id });
  const out = document.createElement("output");
  out.textContent = "1";
  input.addEventListener("input", () => { out.textContent = input.value; });
  const hint = document.createElement("small");
  hint.textContent = flag;
  wrap.append(label + " ", input, " ", out, " ", hint);
  return [wrap, input];
}

function renderBlend() {
  const box = $("any-blend");
  box.replaceChildren();
  const chosen = chosenPaintings();
  if (chosen.length > 1) {
    chosen.forEach((p, i) => {
      const [wrap, input] = slider(`any-blend-${i}`, p.name, "--style-blend");
      input.addEventListener("input", followSliders);
      box.append(wrap);
    });
  }
}

function renderModelSliders() {
  const box = $("blend-sliders");
  box.replaceChildren();
  const styles = page.models[$("model").value] || [];
  styles.forEach((name, i) => {
    const [wrap, input] = slider(`blend-${i}`, name, "--style-blend");
    input.value = i === 0 ? 1 : 0;
    wrap.querySelector("output").textContent = input.value;
    input.addEventListener("input", followSliders);
    box.append(wrap);
  });
}

// --- jobs ---

function payload(kind = engine()) {
  const styles = chosenPaintings().map((p) => p.ref);
  const value = (id) => Number($(id).value);
  if (kind === "optimize") {
    return {
      engine: kind, photo: page.photo, styles, steps: value("steps"), max_dim: value("max-dim"),
      style_weight: value("style-weight"), content_weight: value("content-weight"),
      optimizer: $("optimizer").value, preserve_color: $("opt-preserve").value,
      scales: value("scales"), preview_every: value("preview-every"),
    };
  }
  if (kind === "model") {
    const blend = [...$("blend-sliders").querySelectorAll("input")].map((s) => Number(s.value));
    return {
      engine: kind, photo: page.photo, model: $("model").value, blend,
      strength: value("strength"), preserve_color: $("model-preserve").checked ? "luminance" : "none",
      max_dim: value("model-max-dim"),
    };
  }
  const blend = [...$("any-blend").querySelectorAll("input")].map((s) => Number(s.value));
  return {
    engine: kind, photo: page.photo, styles, blend: blend.length ? blend : styles.map(() => 1),
    alpha: value("alpha"), preserve_color: $("any-preserve").checked ? "luminance" : "none",
    max_dim: value("any-max-dim"), style_size: value("style-size"), levels: value("levels"),
    whitening: $("whitening").value,
    transform: $("transform").value,
    structure: $("structure").value === "default" ? null : Number($("structure").value),
  };
}

async function cancelCurrent() {
  if (page.events) page.events.close();
  page.events = null;
  if (page.job) {
    const id = page.job;
    page.job = null;
    await fetch(`/api/jobs/${id}/cancel`, { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
  }
}

// A Refine: the Optimisation panel's weights and colour choice, the Refine box's steps and
// optimizer, at the one-pass picture's own size, one scale, a preview every step.
function refinePayload(onePass) {
  return {
    ...payload("optimize"), start: onePass.id, max_dim: onePass.maxDim, scales: 1,
    steps: Number($("refine-steps").value), optimizer: $("refine-optimizer").value, preview_every: 1,
  };
}

// The last one-pass job's model and settings as an ONNX file (the server converts: seconds).
async function downloadOnnx() {
  const job = page.onePass?.id;
  if (!job) return;
  const button = $("download-onnx");
  button.disabled = true;
  button.textContent = "Preparing ONNX...";
  try {
    const response = await fetch(`/api/jobs/${job}/model.onnx`);
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(body.error || `${response.status} ${response.statusText}`);
    }
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = `jaxstyle-${job.slice(0, 8)}.onnx`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
  } catch (error) {
    showError(`Download ONNX: ${error.message}`);
  } finally {
    button.disabled = false;
    button.textContent = "Download ONNX";
  }
}

// refine: the one-pass job {id, maxDim} whose picture the optimiser starts from
async function run(refine = null) {
  showError("");
  await cancelCurrent();
  const kind = refine ? "optimize" : engine();
  const body = refine ? refinePayload(refine) : payload(kind);
  let job;
  try {
    job = await api("/api/jobs", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
  } catch (error) {
    showError(error.message);
    return;
  }
  page.job = job.id;
  page.jobKind = kind;
  page.jobMaxDim = body.max_dim;
  if (kind !== "optimize") $("refine-box").hidden = true;  // until this picture is painted
  $("command").textContent = job.command;
  $("stop").disabled = kind !== "optimize";
  $("status").textContent = job.position ? `Waiting: ${job.position} job(s) ahead.` : "Starting...";
  const events = new EventSource(`/api/jobs/${job.id}/events`);
  page.events = events;
  events.onmessage = (message) => onEvent(job.id, JSON.parse(message.data));
  events.onerror = () => { if (page.job === job.id) $("status").textContent = "Connection lost."; };
}

function onEvent(id, event) {
  if (page.job !== id) return;  // a superseded job's late message
  const status = $("status");
  const bar = $("progress");
  switch (event.type) {
    case "queued":
      status.textContent = event.position ? `Waiting: ${event.position} job(s) ahead.` : "Next in line...";
      break;
    case "started":
      status.textContent = "Painting...";
      break;
    case "resumed":
      status.textContent = `Continuing from step ${event.step}...`;
      break;
    case "progress":
      showPicture(event.preview);
      bar.hidden = false;
      bar.value = event.step / event.total;
      status.textContent = event.loss == null ? "Refining the one-pass picture..."
        : `Step ${event.step} of ${event.total}, loss ${event.loss.toExponential(3)}, `
        + `${event.steps_per_s} steps/s` + (event.eta_s != null ? `, about ${Math.round(event.eta_s)} s left` : "");
      break;
    case "preview":
      showPicture(event.preview);
      status.textContent = `Preview at ${event.side} px in ${event.network_ms} ms; painting the full size...`;
      break;
    case "timing":
      status.textContent = `Painted in ${event.network_ms} ms.`;
      break;
    case "done":
    case "stopped":
      finish(id, event.type === "stopped" ? "Stopped; the image is kept." : null);
      break;
    case "error":
      showError(event.message);
      finish(id, "Failed.", false);
      break;
    case "cancelled":
      finish(id, "Cancelled.", false);
      break;
  }
}

function finish(id, message, hasResult = true) {
  page.events?.close();
  page.events = null;
  page.job = null;
  $("stop").disabled = true;
  $("progress").hidden = true;
  const onePass = hasResult && page.jobKind !== "optimize";
  if (onePass) {
    page.onePass = { id, maxDim: page.jobMaxDim };
    $("refine-box").hidden = false;
  }
  $("download-onnx").hidden = $("onnx-hint").hidden = !onePass;
  if (hasResult) {
    const url = `/api/jobs/${id}/result.png`;
    showPicture(url);
    $("download").href = url;
    $("download").hidden = false;
  }
  if (message) $("status").textContent = message;
  else if (!$("status").textContent.startsWith("Painted")) $("status").textContent = "Done.";
}

function followSliders() {
  if (engine() === "optimize") return;  // minutes per run: only on request
  clearTimeout(page.debounce);
  page.debounce = setTimeout(run, 150);
}

// --- wiring ---

function showEngine() {
  const kind = engine();
  document.querySelectorAll(".engine-controls").forEach((box) => { box.hidden = box.dataset.engine !== kind; });
  $("paintings-box").hidden = kind === "model";
}

async function start() {
  const info = await api("/api/info");
  page.paintings = info.paintings.map((name, i) => ({ ref: { painting: i }, name, checked: i === 0 }));
  page.models = info.models;
  for (const name of Object.keys(info.models)) $("model").append(new Option(name, name));
  renderPaintings();
  renderModelSliders();
  showEngine();

  $("photo-file").addEventListener("change", (e) => e.target.files[0] && setPhoto(e.target.files[0]));
  $("painting-file").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    showError("");
    try {
      const added = await upload(file);
      page.paintings.push({ ref: { upload: added.id }, name: file.name, checked: true });
      renderPaintings();
    } catch (error) {
      showError(`${file.name}: ${error.message}`);
    }
  });
  const drop = $("drop-zone");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files[0]) setPhoto(e.dataTransfer.files[0]);
  });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter") $("photo-file").click(); });
  $("use-demo").addEventListener("click", () => {
    page.photo = { demo: true };
    $("photo-thumb").hidden = true;
    $("photo-name").textContent = "demo photo: Chelsea the cat (CC0)";
  });
  document.querySelectorAll("input[name=engine]").forEach((r) => r.addEventListener("change", showEngine));
  $("model").addEventListener("change", () => { renderModelSliders(); followSliders(); });
  for (const id of ["strength", "alpha"]) {
    $(id).addEventListener("input", () => { $(`${id}-value`).textContent = $(id).value; followSliders(); });
  }
  for (const id of ["model-preserve", "any-preserve"]) $(id).addEventListener("change", followSliders);
  $("run").addEventListener("click", () => run());
  $("download-onnx").addEventListener("click", downloadOnnx);
  $("refine").addEventListener("click", () => page.onePass && run(page.onePass));
  $("stop").addEventListener("click", () => {
    if (page.job) fetch(`/api/jobs/${page.job}/stop`, { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
  });
  window.addEventListener("pagehide", () => page.events?.close());
  document.body.dataset.ready = "1";
}

start().catch((error) => showError(`The studio could not start: ${error.message}`));
