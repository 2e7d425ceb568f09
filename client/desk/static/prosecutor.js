// Cadena Desk, the prosecutor's pages: attachments sent as they are chosen, and live arrivals.
//
// Each attachment goes to the desk as the raw body of one request (the File itself, never a
// multipart form), so the desk encrypts it as it arrives and keeps no plaintext copy. The
// upload's progress is the encryption's. No inline script anywhere: the CSP forbids it.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var token = meta ? meta.getAttribute("content") : "";
  var pending = 0;

  function sendButton() { return document.getElementById("send-button"); }

  function setPending(delta) {
    pending += delta;
    var button = sendButton();
    if (button) { button.disabled = pending > 0; }
  }

  function upload(file, list, zone) {
    var item = document.createElement("li");
    var label = document.createElement("span");
    label.textContent = file.name + " · " + file.size.toLocaleString(document.documentElement.lang) + " B";
    var bar = document.createElement("progress");
    bar.max = file.size || 1;
    bar.value = 0;
    bar.setAttribute("aria-label", file.name);
    var state = document.createElement("span");
    state.className = "upload-state";
    item.appendChild(label);
    item.appendChild(bar);
    item.appendChild(state);
    list.appendChild(item);
    setPending(1);
    var xhr = new XMLHttpRequest();
    xhr.open("POST", "/prosecutor/attachments?name=" + encodeURIComponent(file.name));
    xhr.setRequestHeader("X-CSRF-Token", token);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) { bar.max = event.total; bar.value = event.loaded; }
    });
    xhr.addEventListener("load", function () {
      setPending(-1);
      if (xhr.status !== 200) {
        state.textContent = zone.dataset.textFailed;
        item.classList.add("upload-failed");
        return;
      }
      var answer = JSON.parse(xhr.responseText);
      bar.value = bar.max;
      state.textContent = zone.dataset.textDone;
      item.classList.add("upload-done");
      item.dataset.uploaded = "true";
      var hidden = document.createElement("input");
      hidden.type = "hidden";
      hidden.name = "attachment";
      hidden.value = answer.id;
      item.appendChild(hidden);
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "button-secondary";
      remove.textContent = zone.dataset.textRemove;
      remove.addEventListener("click", function () {
        var r = new XMLHttpRequest();
        r.open("POST", "/prosecutor/attachments/" + encodeURIComponent(answer.id) + "/remove");
        r.setRequestHeader("X-CSRF-Token", token);
        r.send();
        item.remove();
      });
      item.appendChild(remove);
    });
    xhr.addEventListener("error", function () {
      setPending(-1);
      state.textContent = zone.dataset.textFailed;
      item.classList.add("upload-failed");
    });
    xhr.send(file);
  }

  function compose() {
    var zone = document.getElementById("dropzone");
    var picker = document.getElementById("attachment-picker");
    var list = document.getElementById("uploads");
    if (!zone || !picker || !list) { return; }
    picker.addEventListener("change", function () {
      Array.prototype.forEach.call(picker.files, function (f) { upload(f, list, zone); });
      picker.value = "";
    });
    zone.addEventListener("dragover", function (event) {
      event.preventDefault();
      zone.classList.add("dragging");
    });
    zone.addEventListener("dragleave", function () { zone.classList.remove("dragging"); });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      zone.classList.remove("dragging");
      Array.prototype.forEach.call(event.dataTransfer.files, function (f) { upload(f, list, zone); });
    });
  }

  function inbox() {
    document.body.addEventListener("htmx:sseMessage", function () {
      var empty = document.getElementById("empty-note");
      if (empty) { empty.remove(); }
      var status = document.getElementById("arrivals");
      if (status) { status.textContent = status.dataset.arrived; }
    });
  }

  document.addEventListener("DOMContentLoaded", function () { compose(); inbox(); });
})();
