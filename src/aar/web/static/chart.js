// PGR against agent-hours with uPlot: one line per agent, the campaign's best so far and the best
// baseline; polls the JSON endpoint for new submissions. No inline script, no HTML built from data:
// every text from the server goes through textContent.
(function () {
  "use strict";
  const box = document.getElementById("chart");
  if (!box || typeof uPlot === "undefined") return;
  const src = box.dataset.src;
  const link = box.dataset.link;
  const pollMs = Math.max(1000, Number(box.dataset.poll) || 3000);
  const tip = document.getElementById("tip");
  const status = document.getElementById("chart-status");
  const palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf"];
  let points = [];
  let sorted = [];
  let meta = null;
  let latest = 0;
  let plot = null;
  let busy = false;

  function build() {
    sorted = points.slice().sort((a, b) => a.x - b.x || a.id - b.id);
    const agents = [...new Set(sorted.map((p) => p.agent))].sort();
    const data = [sorted.map((p) => p.x)];
    const series = [{ label: meta.x_label }];
    agents.forEach((name, i) => {
      data.push(sorted.map((p) => (p.agent === name ? p.y : null)));
      series.push({ label: name, stroke: palette[i % palette.length], width: 1, spanGaps: true,
        points: { show: true, size: 6 } });
    });
    let best = null;
    data.push(sorted.map((p) => (best = best === null ? p.y : Math.max(best, p.y))));
    series.push({ label: "campaign best", stroke: "#111", width: 2.5, points: { show: false },
      paths: uPlot.paths.stepped({ align: 1 }) });
    if (meta.baseline) {
      data.push(sorted.map(() => meta.baseline.pgr));
      series.push({ label: "best baseline (" + meta.baseline.name + ")", stroke: "#888", width: 1.5,
        dash: [6, 4], points: { show: false } });
    }
    return { data, series };
  }

  function showTip(u) {
    const i = u.cursor.idx;
    if (i === null || i === undefined || !sorted[i]) return;
    const p = sorted[i];
    tip.textContent = p.agent + " · " + p.method + " · submission #" + p.id + " · PGR " + p.y.toFixed(3) +
      " at " + p.x.toFixed(3) + " h";
    tip.dataset.submission = String(p.id);
  }

  // tick labels with as many decimals as the tick step needs (a short campaign spans minutes)
  function ticks(u, splits, axisIdx, space, incr) {
    const digits = Math.max(0, Math.min(6, -Math.floor(Math.log10(incr || 1))));
    return splits.map((v) => v.toFixed(digits));
  }

  function render() {
    const { data, series } = build();
    const opts = {
      width: Math.max(320, box.clientWidth), height: 440, series,
      scales: { x: { time: false } },
      axes: [{ label: meta.x_label, values: ticks }, { label: meta.metric_label, values: ticks }],
      cursor: { focus: { prox: 16 } },
      focus: { alpha: 0.45 },
      hooks: { setCursor: [showTip] },
    };
    if (plot) plot.destroy();
    plot = new uPlot(opts, data, box);
    plot.over.addEventListener("click", () => {
      const id = tip.dataset.submission;
      if (id) window.location.href = link + id;
    });
    box.dataset.points = String(sorted.length);
  }

  function merge(d) {
    meta = d;
    const p = d.points;
    for (let i = 0; i < p.id.length; i++) {
      points.push({ id: p.id[i], x: p.x[i], y: p.y[i], agent: d.agents[p.agent[i]], method: d.methods[p.method[i]] });
    }
    latest = Math.max(latest, d.latest_id);
    return p.id.length;
  }

  function load() {
    if (busy || document.hidden) return;
    busy = true;
    fetch(src + "&after=" + latest, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => r.json().then((body) => {
        if (!r.ok) throw new Error(body.error ? body.error.message : "HTTP " + r.status);
        return body;
      }))
      .then((d) => {
        const added = merge(d);
        if (added > 0 || plot === null) render();
        status.textContent = sorted.length + " submissions plotted · updated " +
          new Date().toLocaleTimeString();
        box.dataset.latest = String(latest);
      })
      .catch((e) => { status.textContent = "Update failed: " + e.message; })
      .finally(() => { busy = false; });
  }

  window.addEventListener("resize", () => {
    if (plot) plot.setSize({ width: Math.max(320, box.clientWidth), height: 440 });
  });
  load();
  setInterval(load, pollMs);
})();
