// The overview's rate chart: deliveries per minute by outcome over the last day (uPlot).
(function () {
  "use strict";
  var COLORS = {
    accepted: "#2e7d32",
    quarantined: "#b26a00",
    duplicate: "#1565c0",
    rejected: "#c62828",
    unavailable: "#6a1b9a",
  };

  function draw(holder, data) {
    var names = Object.keys(data.series);
    var columns = [data.times].concat(names.map(function (n) { return data.series[n]; }));
    var series = [{}].concat(names.map(function (n) {
      return { label: n, stroke: COLORS[n] || "#444", width: 1.5, value: function (u, v) { return v == null ? "-" : v.toFixed(1) + "/min"; } };
    }));
    var width = Math.max(320, holder.clientWidth || 800);
    holder.textContent = "";
    new uPlot({ width: width, height: 220, series: series, axes: [{}, { label: "per minute" }] }, columns, holder);
  }

  function load() {
    var holder = document.getElementById("rate-chart");
    if (!holder || typeof uPlot === "undefined") { return; }
    fetch(holder.dataset.src, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { if (!response.ok) { throw new Error(response.status); } return response.json(); })
      .then(function (data) { draw(holder, data); holder.dataset.drawn = "true"; })
      .catch(function () { holder.textContent = "The chart could not be loaded."; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    load();
    setInterval(load, 60000);
  });
})();
