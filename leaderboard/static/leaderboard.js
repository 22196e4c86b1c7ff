// forgetbench leaderboard: table sorting and filtering, legend toggles, drop at matched gain.
// Loaded from static/ (the pages' CSP forbids inline scripts); data comes from
// <script type="application/json"> blocks, read with JSON.parse, never evaluated.
"use strict";

(function () {
  function cellValue(row, col, numeric) {
    var td = row.cells[col];
    if (!td) return null;
    if (numeric) {
      var v = td.getAttribute("data-v");
      return v === null || v === "" ? null : parseFloat(v);
    }
    return td.textContent.trim().toLowerCase();
  }

  function sortTable(table, th) {
    var col = Array.prototype.indexOf.call(th.parentNode.children, th);
    var numeric = th.getAttribute("data-sort") === "num";
    // First click: numbers descending (best gain first), text ascending; then toggle.
    var current = th.getAttribute("aria-sort");
    var dir = current ? (current === "ascending" ? -1 : 1) : (numeric ? -1 : 1);
    table.querySelectorAll("th[aria-sort]").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).map(function (r, i) {
      return { row: r, key: cellValue(r, col, numeric), i: i };
    });
    rows.sort(function (a, b) {
      if (a.key === null || b.key === null) {  // missing values always last
        if (a.key === b.key) return a.i - b.i;
        return a.key === null ? 1 : -1;
      }
      if (a.key < b.key) return -dir;
      if (a.key > b.key) return dir;
      return a.i - b.i;
    });
    var frag = document.createDocumentFragment();
    rows.forEach(function (r) { frag.appendChild(r.row); });
    body.appendChild(frag);
  }

  function setupTable() {
    var table = document.getElementById("board");
    if (!table) return;
    table.querySelectorAll("th[data-sort]").forEach(function (th) {
      th.addEventListener("click", function () { sortTable(table, th); });
    });
    var selects = Array.prototype.slice.call(document.querySelectorAll("#filters select"));
    var q = document.getElementById("f-q");
    var count = document.getElementById("f-count");
    function apply() {
      var needle = q.value.trim().toLowerCase();
      var shown = 0;
      Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
        var ok = selects.every(function (s) {
          return !s.value || r.getAttribute("data-" + s.getAttribute("data-col")) === s.value;
        });
        if (ok && needle) ok = r.textContent.toLowerCase().indexOf(needle) !== -1;
        r.classList.toggle("hidden", !ok);
        if (ok) shown++;
      });
      count.textContent = shown + " shown";
    }
    selects.forEach(function (s) { s.addEventListener("change", apply); });
    q.addEventListener("input", apply);
    document.getElementById("filters").addEventListener("submit", function (ev) { ev.preventDefault(); });
  }

  function setupLegend() {
    document.querySelectorAll(".legend-item").forEach(function (btn) {
      btn.setAttribute("aria-pressed", "true");
      btn.addEventListener("click", function () {
        var on = btn.getAttribute("aria-pressed") !== "true";
        btn.setAttribute("aria-pressed", on ? "true" : "false");
        var series = btn.getAttribute("data-series");
        document.querySelectorAll("svg [data-series]").forEach(function (el) {
          if (el.getAttribute("data-series") === series) el.classList.toggle("faded", !on);
        });
      });
    });
  }

  // Same rule as forgetbench.leaderboard.plots.drop_at_gain.
  function dropAtGain(front, g) {
    if (!front.length || g > front[front.length - 1][0]) return null;
    if (g <= front[0][0]) return front[0][1];
    for (var i = 0; i + 1 < front.length; i++) {
      var a = front[i], b = front[i + 1];
      if (a[0] <= g && g <= b[0]) return b[0] === a[0] ? a[1] : a[1] + (b[1] - a[1]) * (g - a[0]) / (b[0] - a[0]);
    }
    return null;
  }

  function setupMatched() {
    document.querySelectorAll("section.target").forEach(function (sec) {
      var data = sec.querySelector("script.fronts");
      var slider = sec.querySelector("input.gain-level");
      if (!data || !slider) return;
      var fronts = JSON.parse(data.textContent);
      var out = sec.querySelector("output.gain-value");
      slider.addEventListener("input", function () {
        var g = parseFloat(slider.value);
        out.textContent = g.toFixed(1);
        sec.querySelectorAll("tr[data-method]").forEach(function (tr) {
          var f = fronts[tr.getAttribute("data-method")] || [];
          var d = dropAtGain(f, g);
          tr.querySelector(".matched-drop").textContent = d === null ? "–" : (d >= 0 ? "+" : "") + d.toFixed(1);
        });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupTable();
    setupLegend();
    setupMatched();
  });
})();
