// Small progressive enhancements for the Blueprint portal. Every page works without this file:
// it only adds a "copy link" button, a warning before leaving an edited form, and moves focus
// to the error summary after a rejected save.
(function () {
  "use strict";

  var copyButton = document.querySelector("[data-copy-url]");
  if (copyButton && navigator.clipboard && window.isSecureContext) {
    var status = document.querySelector(".copy-status");
    copyButton.hidden = false;
    copyButton.querySelector("button").addEventListener("click", function () {
      navigator.clipboard.writeText(window.location.href).then(function () {
        if (status) {
          status.textContent = status.getAttribute("data-copied") || "";
        }
      });
    });
  }

  var forms = document.querySelectorAll("form[data-warn-unsaved]");
  Array.prototype.forEach.call(forms, function (form) {
    var dirty = false;
    form.addEventListener("input", function () {
      dirty = true;
    });
    form.addEventListener("submit", function () {
      dirty = false;
    });
    window.addEventListener("beforeunload", function (event) {
      if (dirty) {
        event.preventDefault();
        event.returnValue = "";
      }
    });
  });

  var summary = document.getElementById("error-summary");
  if (summary) {
    summary.focus();
  }
})();
