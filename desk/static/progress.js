// Live progress of a send: polls the edition's status every second and
// fills in the counts, without reloading the page. Loaded as a file of
// the desk (its Content-Security-Policy allows no inline script).
(function () {
  "use strict";
  var box = document.getElementById("progress");
  if (!box) { return; }
  var url = box.getAttribute("data-status");
  function set(id, v) {
    var el = document.getElementById(id);
    if (el) { el.textContent = v; }
  }
  function tick() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (s) {
        set("state", s.state);
        set("sent", s.sent);
        set("failed", s.failed);
        set("remaining", s.remaining);
        set("rate", s.rate.toFixed(1));
        set("eta", s.eta || "");
        var bar = document.getElementById("bar");
        if (bar) { bar.value = Math.round(s.percent); bar.textContent = Math.round(s.percent) + "%"; }
        if (s.state !== "finished") { setTimeout(tick, 1000); }
      })
      .catch(function () { setTimeout(tick, 3000); });
  }
  setTimeout(tick, 1000);
})();
