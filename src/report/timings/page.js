"use strict";
(function () {
  // What went wrong in this script is kept on the page (data-errors), so a test can see it.
  var errors = [];
  function fail(message) {
    errors.push(String(message));
    document.body.setAttribute("data-errors", String(errors.length));
  }
  window.addEventListener("error", function (e) { fail(e.message); });
  try {
    var data = JSON.parse(document.getElementById("irun-data").textContent);
    var tip = document.getElementById("tip");
    var secs = function (s) {
      if (s === null || s === undefined) return null;
      if (s >= 120) return Math.floor(s / 60) + " m " + Math.floor(s % 60) + " s";
      if (s >= 10) return s.toFixed(1) + " s";
      if (s >= 0.1 || s === 0) return s.toFixed(2) + " s";
      return (s * 1000).toFixed(1) + " ms";
    };
    var row = function (dl, name, value) {
      if (value === null || value === undefined || value === "") return;
      var dt = document.createElement("dt"); dt.textContent = name;
      var dd = document.createElement("dd");
      if (name === "command") { var c = document.createElement("code"); c.textContent = value; dd.appendChild(c); }
      else dd.textContent = value;
      dl.appendChild(dt); dl.appendChild(dd);
    };
    var show = function (bar, x, y) {
      var at = bar.getAttribute("data-i").split(".");
      var d = data[+at[0]][+at[1]];
      tip.textContent = "";
      var title = document.createElement("b");
      title.textContent = d.name + (d.critical ? "  (critical path)" : "");
      tip.appendChild(title);
      var dl = document.createElement("dl");
      row(dl, "kind", d.kind);
      row(dl, "status", d.status.replace(/_/g, " ") + (d.detail ? " (" + d.detail + ")" : ""));
      row(dl, "lane", d.lane);
      row(dl, "started", d.carried ? "before this cycle" : (d.start_s === null ? null : "+" + secs(d.start_s)));
      row(dl, "duration", secs(d.duration_s));
      row(dl, "ready after", d.ready_s === null ? null : "+" + secs(d.ready_s));
      row(dl, "probe", d.probe);
      row(dl, "waited for a service", d.waited_for_service_s ? secs(d.waited_for_service_s) : null);
      row(dl, "waited for a slot", d.waited_for_slot_s ? secs(d.waited_for_slot_s) : null);
      row(dl, "restarts", d.restarts || null);
      row(dl, "stopped because", d.stop_reason);
      row(dl, "why it ran", d.why);
      row(dl, "tests", d.tests);
      row(dl, "command", d.command);
      tip.appendChild(dl);
      tip.hidden = false;
      var w = tip.offsetWidth, h = tip.offsetHeight;
      tip.style.left = Math.max(4, Math.min(x + 14, window.innerWidth - w - 8)) + "px";
      tip.style.top = (y + h + 20 > window.innerHeight ? Math.max(4, y - h - 10) : y + 16) + "px";
    };
    document.querySelectorAll(".bar").forEach(function (bar) {
      bar.addEventListener("mousemove", function (e) { show(bar, e.clientX, e.clientY); });
      bar.addEventListener("mouseleave", function () { tip.hidden = true; });
      bar.addEventListener("focus", function () { var r = bar.getBoundingClientRect(); show(bar, r.left, r.bottom); });
      bar.addEventListener("blur", function () { tip.hidden = true; });
    });
    // Sortable tables: a click on a heading sorts by it, a second click the other way.
    document.querySelectorAll("table.tasks").forEach(function (table) {
      var heads = table.querySelectorAll("th");
      heads.forEach(function (th, col) {
        th.addEventListener("click", function () {
          var asc = th.getAttribute("aria-sort") !== "ascending";
          heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
          th.setAttribute("aria-sort", asc ? "ascending" : "descending");
          var num = th.getAttribute("data-sort") === "num";
          var body = table.tBodies[0];
          var rows = Array.prototype.slice.call(body.rows);
          var key = function (r) {
            var cell = r.cells[col];
            return num ? parseFloat(cell.getAttribute("data-v")) : cell.textContent.toLowerCase();
          };
          rows.sort(function (a, b) {
            var x = key(a), y = key(b);
            var c = x < y ? -1 : x > y ? 1 : 0;
            return asc ? c : -c;
          });
          rows.forEach(function (r) { body.appendChild(r); });
        });
      });
    });
    // `page.html#task=NAME` opens on that task, its details shown (a link to one task of a CI artifact).
    var wanted = "";
    try { wanted = /^#task=/.test(location.hash) ? decodeURIComponent(location.hash.slice(6)) : ""; } catch (e) { }
    if (wanted) {
      var bar = Array.prototype.filter.call(document.querySelectorAll(".bar"), function (b) {
        return b.getAttribute("data-task") === wanted;
      })[0];
      if (bar) {
        bar.scrollIntoView({ block: "center" });
        var r = bar.getBoundingClientRect();
        show(bar, r.left, r.bottom);
      }
    }
    document.body.setAttribute("data-ready", "1");
  } catch (e) {
    fail(e && e.message ? e.message : e);
  }
})();
