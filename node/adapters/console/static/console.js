// xnode console: small enhancements only; every page works without this script.
"use strict";
(function () {
  // Ask before an action that cannot be undone (discard, delete).
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) event.preventDefault();
  });
  // A message goes abroad once: a second click on Send while the first is on its way is ignored.
  var compose = document.getElementById("compose");
  if (compose) {
    compose.addEventListener("submit", function (event) {
      var send = event.submitter && event.submitter.value === "send";
      if (send && compose.dataset.sending) event.preventDefault();
      if (send) compose.dataset.sending = "1";
    });
  }
  // Move focus to the error summary of a refused form.
  var summary = document.getElementById("error-summary");
  if (summary) summary.focus();
  // Sent list: per-recipient states updated live over Server-Sent Events.
  var table = document.getElementById("sent-table");
  if (!table || !window.EventSource) return;
  var labels = {};
  var template = document.getElementById("state-labels");
  if (template) {
    template.content.querySelectorAll("[data-state]").forEach(function (el) {
      labels[el.getAttribute("data-state")] = el.textContent;
    });
  }
  var source = new EventSource(table.getAttribute("data-live"));
  source.onmessage = function (event) {
    var data = JSON.parse(event.data);
    Object.keys(data).forEach(function (id) {
      var row = document.getElementById("m-" + id);
      if (!row) return;
      data[id].recipients.forEach(function (r) {
        var item = row.querySelector('[data-recipient="' + CSS.escape(r.node_id) + '"]');
        if (!item) return;
        item.className = "state-" + r.state;
        item.querySelector(".state").textContent = labels[r.state] || r.state;
        var reason = item.querySelector(".reason");
        if (reason) reason.textContent = r.reason ? " — " + r.reason + (r.detail ? ": " + r.detail : "") : "";
      });
    });
  };
})();
