// The drawing pad: draw with a mouse, a finger or a pen (Pointer Events) and the model answers as
// you draw, through demo.js's one request channel. The drawing is sent as it is, a PNG, to the
// same route as an upload: any cropping or resizing is the server's, as for any other picture.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const demo = window.demo, canvas = $("pad");
  if (!demo || !canvas) return; // no model served: the page says so
  const context = canvas.getContext("2d");
  const PEN = 0.06;          // the stroke's width as a share of the canvas's: the same drawing at any size
  const INK = "#111", PAPER = "#fff";
  const QUIET_MS = 250;      // ask this long after the last change (and at once when a stroke ends)
  const strokes = [];        // each a list of [x, y] in 0..1 of the canvas: kept so Undo can redraw
  let active = null;         // {id, points} of the stroke under the pointer
  let timer = 0;

  // The canvas is always redrawn whole from the strokes, so its pixels are a function of them alone:
  // Undo gives exactly the picture before the last stroke.
  function paint() {
    const side = canvas.width;
    context.fillStyle = PAPER;
    context.fillRect(0, 0, side, canvas.height);
    context.fillStyle = context.strokeStyle = INK;
    context.lineWidth = PEN * side;
    context.lineCap = context.lineJoin = "round";
    for (const points of strokes) {
      context.beginPath();
      if (points.length === 1) { // a tap: a dot as wide as the pen
        context.arc(points[0][0] * side, points[0][1] * canvas.height, context.lineWidth / 2, 0, 2 * Math.PI);
        context.fill();
        continue;
      }
      points.forEach(([x, y], i) => (i ? context.lineTo : context.moveTo).call(context, x * side, y * canvas.height));
      context.stroke();
    }
  }

  // As many canvas pixels as screen pixels (up to 2 per CSS pixel): sharp strokes, modest PNGs.
  function fit() {
    const side = Math.round(canvas.clientWidth * Math.min(window.devicePixelRatio || 1, 2));
    if (side > 0 && side !== canvas.width) {
      canvas.width = canvas.height = side;
      paint();
    }
  }

  // The drawing as it is now; a blank pad is never sent (the server would only refuse it).
  function snapshot() {
    if (!strokes.length) return Promise.resolve(null);
    return new Promise((resolve) => canvas.toBlob(
      (blob) => resolve(blob && new File([blob], "drawing.png", { type: "image/png" })), "image/png"));
  }

  // The drawing changed: any answer in flight is for an older one, and a new request waits for a pause.
  function changed() {
    paint();
    demo.changed(snapshot, "drawing");
    clearTimeout(timer);
    timer = setTimeout(demo.pump, QUIET_MS);
  }

  function ask() {
    clearTimeout(timer);
    demo.pump();
  }

  function where(event) {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) / box.width, (event.clientY - box.top) / box.height];
  }

  canvas.addEventListener("pointerdown", (event) => {
    // One stroke at a time (a second finger is ignored), with the main button of a mouse.
    if (active || (event.pointerType === "mouse" && event.button !== 0)) return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId); // the stroke follows the pointer off the canvas and back
    active = { id: event.pointerId, points: [where(event)] };
    strokes.push(active.points);
    changed();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!active || event.pointerId !== active.id) return;
    // The points the browser merged into this event too: a fast stroke stays smooth.
    const all = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    for (const each of all.length ? all : [event]) active.points.push(where(each));
    changed();
  });
  const end = (event) => {
    if (!active || event.pointerId !== active.id) return;
    active = null;
    ask();
  };
  ["pointerup", "pointercancel", "lostpointercapture"].forEach((type) => canvas.addEventListener(type, end));

  $("undo").addEventListener("click", () => {
    if (!strokes.length) { demo.say("Nothing to undo."); return; }
    strokes.pop();
    if (!strokes.length) { clear("The last stroke is undone; the pad is empty."); return; }
    changed();
    ask();
    demo.say("The last stroke is undone.");
  });
  $("clear").addEventListener("click", () => clear("The drawing is cleared."));

  // Nothing is sent for an empty pad: the result goes back to its prompt.
  function clear(text) {
    strokes.length = 0;
    active = null;
    clearTimeout(timer);
    paint();
    demo.withdraw("drawing", text);
  }

  // The accessible name says what the pad is for, with the chosen model's title: the page serves any model.
  function name() {
    canvas.setAttribute("aria-label", "Drawing pad for " + demo.title());
  }
  $("model").addEventListener("change", name);
  name();
  paint();
  fit();
  if (window.ResizeObserver) new ResizeObserver(fit).observe(canvas);
})();
