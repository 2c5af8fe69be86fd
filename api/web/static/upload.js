// The demo page's ways in for a picture that exists: the file chooser, drag and drop, paste and the
// camera. Each hands the file to demo.js's one request channel.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const demo = window.demo;
  if (!demo) return; // no model served: the page says so
  const maxBytes = JSON.parse($("settings").textContent).maxBytes;

  function choose(file) {
    if (!file) return;
    demo.fail("");
    if (file.size > maxBytes) { // refused here: sending it would only fetch the same refusal
      demo.fail("That file is " + demo.megabytes(file.size) + "; this server accepts images up to " +
                demo.megabytes(maxBytes) + ".");
      return;
    }
    demo.want(() => Promise.resolve(file), "upload");
  }

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
      demo.fail("");
      try {
        stream = await media.getUserMedia({ video: { facingMode: "environment" }, audio: false });
      } catch (error) {
        demo.fail("The camera is not available (" + error.message + ").");
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
