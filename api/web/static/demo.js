// The demo page's core: the model, version and top-k pickers, classifying a picture with POST
// /<model>/prediction (or a version's route), the answer's bars, and why (.../explanation). The
// pictures come from upload.js (file, drop, paste, camera) and draw.js (the pad). No build step, no
// outside assets. Every prediction goes through one channel (pump): at most one request in flight,
// and only the answer for what is asked now is shown.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const settings = JSON.parse($("settings").textContent);
  const model = $("model");
  if (!model) return; // no model served: the page says so

  const state = {
    subject: null,   // () => Promise<File|null>: the picture to classify, read when it is sent
    kind: null,      // "upload" (file, paste, camera) or "drawing"
    generation: 0,   // bumped when the picture or a setting changes: an answer for an older one is dropped
    busy: false,     // a prediction is in flight
    again: false,    // asked to send while busy: send once it returns
    shown: null,     // the answer on screen: {file, kind, answer, path, explanation, elapsed}
    overlayFor: null, explaining: false, previewUrl: null,
  };
  $("limit").textContent = megabytes(settings.maxBytes);

  function megabytes(bytes) {
    return (bytes / 1048576).toFixed(bytes < 1048576 ? 2 : 1) + " MB";
  }

  function headers(extra) {
    const out = Object.assign({}, extra);
    const key = $("key") && $("key").value.trim();
    if (key) out["X-API-Key"] = key;
    return out;
  }

  function say(text) {
    $("status").textContent = text;
  }

  function fail(text) {
    const box = $("error");
    box.textContent = text;
    box.hidden = !text;
  }

  function showResult(visible) {
    $("result").hidden = !visible;
    $("prompt").hidden = visible;
  }

  // The server's JSON errors carry a sentence for people; anything else gets a plain one.
  async function problem(response) {
    try {
      const body = await response.json();
      if (body && body.message) return body.message;
    } catch (ignored) { /* not JSON */ }
    return "The server answered " + response.status + " " + response.statusText + ".";
  }

  // The versions and the top-k bound follow the chosen model (and version: versions may differ in labels).
  function current() {
    return settings.models[model.value];
  }

  function fillVersions() {
    const picker = $("version");
    picker.replaceChildren(...current().versions.map((v) => {
      const option = new Option("v" + v.version + (v.version === current().default ? " (default)" : ""), v.version);
      option.selected = v.version === current().default;
      return option;
    }));
    boundTopK();
  }

  function chosen() {
    return current().versions.find((v) => String(v.version) === $("version").value) || current().versions[0];
  }

  // top_k within 1..the chosen version's labels; what a half-typed box holds is bounded when it is sent.
  function topK() {
    const value = Math.round(Number($("top-k").value));
    return Math.min(Number.isFinite(value) && value >= 1 ? value : 5, chosen().labels);
  }

  function boundTopK() {
    $("top-k").max = chosen().labels;
    $("top-k").value = topK();
  }

  // Where the request goes: the default version answers on the model's own routes, as a client would call them.
  function routes() {
    const version = Number($("version").value);
    const base = "/" + encodeURIComponent(model.value) + "/" +
      (version === current().default ? "" : "versions/" + version + "/");
    return { prediction: base + "prediction", explanation: base + "explanation", topK: topK() };
  }

  // POST the image (and any extra fields) to one route; a network failure throws.
  function send(path, file, accept, extra) {
    const form = new FormData();
    form.append("image", file, file.name || "image.png");
    Object.entries(extra || {}).forEach(([name, value]) => form.append(name, value));
    return fetch(path, { method: "POST", body: form, headers: headers({ Accept: accept }) });
  }

  // A new picture to classify now (an upload), or one still changing (a stroke being drawn: the pad
  // calls pump when it wants an answer). Either way an answer in flight is for an older picture.
  function want(subject, kind) {
    changed(subject, kind);
    pump();
  }

  function changed(subject, kind) {
    state.subject = subject;
    state.kind = kind;
    state.generation++;
  }

  async function pump() {
    if (state.busy) { state.again = true; return; }
    if (!state.subject) return;
    state.busy = true;
    state.again = false;
    const generation = state.generation, kind = state.kind, where = routes();
    let outcome = null;
    try {
      const file = await state.subject(); // null: nothing to send (a blank drawing)
      if (file) {
        say("Classifying…");
        outcome = await predict(file, where);
        Object.assign(outcome, { file, kind });
      }
    } finally {
      state.busy = false;
    }
    if (outcome && generation === state.generation) present(outcome);
    // Asked again while this one was out, for a picture or settings that changed since: the last one wins.
    if (state.again && generation !== state.generation) pump();
  }

  async function predict(file, where) {
    const started = performance.now();
    try {
      const response = await send(where.prediction, file, "application/json", { top_k: where.topK });
      const elapsed = performance.now() - started;
      if (!response.ok) return { error: await problem(response) };
      return { answer: await response.json(), elapsed, path: where.prediction, explanation: where.explanation };
    } catch (error) {
      return { error: "The server cannot be reached (" + error.message + ")." };
    }
  }

  function present(outcome) {
    if (outcome.error) {
      say("");
      state.shown = null;
      showResult(false);
      fail(outcome.error);
      return;
    }
    fail("");
    const answer = outcome.answer;
    state.shown = outcome;
    if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
    state.previewUrl = URL.createObjectURL(outcome.file);
    const preview = $("preview");
    preview.hidden = false;
    preview.closest(".stack").classList.remove("unviewable");
    // The server reads formats a browser may not show (HEIC in Chromium): then show the picture as the
    // server read it, which is what the explanation image is drawn on.
    preview.onerror = () => {
      if (state.shown !== outcome) return;
      preview.hidden = true;
      preview.closest(".stack").classList.add("unviewable");
      $("explain").checked = true;
      explain().then(() => {
        const note = "This browser cannot show this picture; here it is as the server read it. ";
        if (state.shown === outcome) $("explain-note").prepend(note);
      });
    };
    preview.src = state.previewUrl;
    preview.alt = outcome.kind === "drawing" ? "Your drawing"
      : "The image you chose" + (outcome.file.name ? ": " + outcome.file.name : "");
    $("overlay").hidden = true;
    $("explain-note").textContent = "";
    show(answer, outcome);
    say(answer.label + ", " + percent(answer.confidence) + " confident.");
    if ($("explain").checked) explain();
  }

  function percent(value) {
    if (value > 0 && value < 0.0005) return "<0.1%";
    return (100 * value).toFixed(value >= 0.995 || value < 0.001 ? 1 : 2).replace(/\.?0+$/, "") + "%";
  }

  function show(answer, outcome) {
    $("top-label").textContent = answer.label;
    $("top-confidence").textContent = percent(answer.confidence);
    const bars = $("bars");
    bars.replaceChildren();
    for (const p of answer.predictions) {
      const item = document.createElement("li");
      item.dataset.label = p.label;
      item.dataset.confidence = String(p.confidence);
      const name = document.createElement("span");
      name.className = "label";
      name.textContent = p.label;
      const track = document.createElement("span");
      track.className = "track";
      track.setAttribute("aria-hidden", "true");
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = Math.max(0.5, 100 * p.confidence).toFixed(2) + "%";
      track.appendChild(bar);
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = percent(p.confidence);
      item.append(name, track, value);
      bars.appendChild(item);
    }
    // Which version answered, from the answer itself, and the route it came from: the page is a client.
    const link = document.createElement("a");
    link.href = "/" + encodeURIComponent(answer.model) + "/versions/" + answer.version + "/";
    link.textContent = answer.model + " v" + answer.version;
    link.title = "This version's metadata (GET " + link.getAttribute("href") + ")";
    const route = document.createElement("code");
    route.textContent = "POST " + outcome.path;
    $("timing").replaceChildren("Answered in " + Math.round(outcome.elapsed) + " ms by ", link, " — ", route);
    showResult(true);
  }

  // One explanation at a time, for the answer on screen; one that returns for an older answer is dropped.
  async function explain() {
    const overlay = $("overlay"), shown = state.shown;
    if (!shown) return;
    if (state.overlayFor === shown) { overlay.hidden = false; return; }
    if (state.explaining) return; // the one in flight asks again for this answer when it returns
    state.explaining = true;
    $("explain-note").textContent = "Computing the explanation…";
    const started = performance.now();
    let response = null, error = "";
    try {
      // Log-odds: a confident model's probability barely moves, its evidence still does.
      response = await send(shown.explanation, shown.file, "image/png", { measure: "log_odds" });
      if (!response.ok) error = await problem(response);
    } catch (failure) {
      error = "The explanation could not be fetched (" + failure.message + ").";
    } finally {
      state.explaining = false;
    }
    if (shown !== state.shown) { // the answer changed meanwhile: explain the one on screen instead
      if (state.shown && $("explain").checked) explain();
      return;
    }
    if (error) {
      $("explain-note").textContent = "";
      fail(error);
      return;
    }
    const blob = await response.blob();
    const label = decodeURIComponent(response.headers.get("X-Explanation-Label") || "");
    if (overlay.src) URL.revokeObjectURL(overlay.src);
    overlay.onload = () => {
      overlay.hidden = !$("explain").checked || shown !== state.shown;
      state.overlayFor = shown;
    };
    overlay.src = URL.createObjectURL(blob);
    overlay.alt = "Heat map over the image: the regions that support the label " + label;
    $("explain-note").textContent = "Why " + label + ": " + response.headers.get("X-Explanation-Passes") +
      " passes in " + Math.round(performance.now() - started) + " ms.";
  }

  // The pad's Clear (or its last stroke undone): the drawing's answer goes, the prompt comes back.
  function withdraw(kind, text) {
    if (state.kind === kind) {
      changed(null, null);
      state.shown = null;
      showResult(false);
      fail("");
    }
    say(text);
  }

  // A setting changed: the same picture is asked again (an answer for the old settings is dropped).
  function resend() {
    if (state.subject) want(state.subject, state.kind);
  }

  $("explain").addEventListener("change", (event) => {
    if (event.target.checked) explain();
    else $("overlay").hidden = true;
  });
  model.addEventListener("change", () => { fillVersions(); resend(); });
  $("version").addEventListener("change", () => { boundTopK(); resend(); });
  $("top-k").addEventListener("change", () => { boundTopK(); resend(); });
  fillVersions();

  // For the ways in: upload.js (file, drop, paste, camera) and draw.js (the pad).
  window.demo = { want, changed, pump, withdraw, say, fail, megabytes, title: () => current().title };
})();
