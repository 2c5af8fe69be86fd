// The demo page: choose an image, classify it with POST /<model>/prediction, and show why with
// POST /<model>/explanation. No build step, no outside assets.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const settings = JSON.parse($("settings").textContent);
  const model = $("model");
  if (!model) return; // no model served: the page says so

  const state = { file: null, previewUrl: null, overlayFor: null, request: 0 };
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

  // The server's JSON errors carry a sentence for people; anything else gets a plain one.
  async function problem(response) {
    try {
      const body = await response.json();
      if (body && body.message) return body.message;
    } catch (ignored) { /* not JSON */ }
    return "The server answered " + response.status + " " + response.statusText + ".";
  }

  // POST the image (and any extra fields) to one of the model's routes; a network failure throws.
  function send(route, file, accept, extra) {
    const form = new FormData();
    form.append("image", file, file.name || "image.png");
    Object.entries(extra || {}).forEach(([name, value]) => form.append(name, value));
    return fetch("/" + encodeURIComponent(model.value) + "/" + route,
                 { method: "POST", body: form, headers: headers({ Accept: accept }) });
  }

  function choose(file) {
    if (!file) return;
    fail("");
    if (file.size > settings.maxBytes) {
      fail("That file is " + megabytes(file.size) + "; this server accepts images up to " +
           megabytes(settings.maxBytes) + ".");
      return;
    }
    state.file = file;
    state.overlayFor = null;
    if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
    state.previewUrl = URL.createObjectURL(file);
    $("preview").src = state.previewUrl;
    $("preview").alt = "The image you chose" + (file.name ? ": " + file.name : "");
    $("overlay").hidden = true;
    classify();
  }

  async function classify() {
    if (!state.file) return;
    const ticket = ++state.request; // an answer to an older request is dropped
    say("Classifying…");
    const started = performance.now();
    let response;
    try {
      response = await send("prediction", state.file, "application/json");
    } catch (error) {
      if (ticket === state.request) { say(""); fail("The server cannot be reached (" + error.message + ")."); }
      return;
    }
    const elapsed = performance.now() - started;
    if (ticket !== state.request) return;
    if (!response.ok) {
      say("");
      $("result").hidden = true;
      fail(await problem(response));
      return;
    }
    const answer = await response.json();
    show(answer, elapsed);
    say(answer.label + ", " + percent(answer.confidence) + " confident.");
    if ($("explain").checked) explain();
  }

  function percent(value) {
    if (value > 0 && value < 0.0005) return "<0.1%";
    return (100 * value).toFixed(value >= 0.995 || value < 0.001 ? 1 : 2).replace(/\.?0+$/, "") + "%";
  }

  function show(answer, elapsed) {
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
    $("timing").textContent = "Answered in " + Math.round(elapsed) + " ms by " + answer.model + " v" +
      answer.version + ".";
    $("result").hidden = false;
  }

  async function explain() {
    const overlay = $("overlay");
    if (!state.file) return;
    if (state.overlayFor === state.file) { overlay.hidden = false; return; }
    const file = state.file;
    $("explain-note").textContent = "Computing the explanation…";
    const started = performance.now();
    let response;
    try {
      // Log-odds: a confident model's probability barely moves, its evidence still does.
      response = await send("explanation", file, "image/png", { measure: "log_odds" });
    } catch (error) {
      $("explain-note").textContent = "";
      fail("The explanation could not be fetched (" + error.message + ").");
      return;
    }
    if (file !== state.file) return;
    if (!response.ok) {
      $("explain-note").textContent = "";
      fail(await problem(response));
      return;
    }
    const blob = await response.blob();
    const label = decodeURIComponent(response.headers.get("X-Explanation-Label") || "");
    if (overlay.src) URL.revokeObjectURL(overlay.src);
    overlay.onload = () => {
      overlay.hidden = !$("explain").checked;
      state.overlayFor = file;
    };
    overlay.src = URL.createObjectURL(blob);
    overlay.alt = "Heat map over the image: the regions that support the label " + label;
    $("explain-note").textContent = "Why " + label + ": " + response.headers.get("X-Explanation-Passes") +
      " passes in " + Math.round(performance.now() - started) + " ms.";
  }

  $("explain").addEventListener("change", (event) => {
    if (event.target.checked) explain();
    else $("overlay").hidden = true;
  });
  model.addEventListener("change", () => { state.overlayFor = null; $("overlay").hidden = true; classify(); });
  $("file").addEventListener("change", (event) => { choose(event.target.files[0]); event.target.value = ""; });

  const drop = $("drop");
  drop.addEventListener("keydown", (event) => {
    if (event.target === drop && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      $("file").click();
    }
  });
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    choose(event.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (event) => {
    const item = Array.from(event.clipboardData ? event.clipboardData.files : []).find(Boolean);
    if (item) choose(item);
  });

  // The camera, where the browser offers one (a secure context: https or localhost).
  const media = navigator.mediaDevices;
  if (media && media.getUserMedia) {
    const video = $("video");
    let stream = null;
    const stop = () => {
      if (stream) stream.getTracks().forEach((track) => track.stop());
      stream = null;
      $("camera-panel").hidden = true;
    };
    $("camera").hidden = false;
    $("camera").addEventListener("click", async () => {
      fail("");
      try {
        stream = await media.getUserMedia({ video: { facingMode: "environment" }, audio: false });
      } catch (error) {
        fail("The camera is not available (" + error.message + ").");
        return;
      }
      video.srcObject = stream;
      $("camera-panel").hidden = false;
      await video.play();
      $("snap").focus();
    });
    $("snap").addEventListener("click", () => {
      const canvas = document.createElement("canvas");
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      canvas.getContext("2d").drawImage(video, 0, 0);
      canvas.toBlob((blob) => {
        stop();
        choose(new File([blob], "camera.png", { type: "image/png" }));
      }, "image/png");
    });
    $("camera-cancel").addEventListener("click", stop);
  }
})();
