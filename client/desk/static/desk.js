// Cadena Desk: the little behaviour the pages need. No inline script anywhere (the CSP
// forbids it); htmx does the rest. This file adds the CSRF token to every request htmx
// makes, and moves the focus to an error summary so a keyboard or screen-reader user
// lands on it.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var token = meta ? meta.getAttribute("content") : "";
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = token;
  });
  document.addEventListener("DOMContentLoaded", function () {
    var summary = document.querySelector("[data-autofocus]");
    if (summary) { summary.focus(); }
  });
})();
