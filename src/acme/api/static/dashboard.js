"use strict";
// The dashboard: each card asks one API endpoint and draws its answer with Chart.js, with the
// same numbers in a table beside it. After drawing, a card carries data-state="ready" and the
// exact URL it asked in data-url (the browser test compares both with the API).

Chart.defaults.animation = false;
Chart.defaults.maintainAspectRatio = false;
Chart.defaults.font.family = "system-ui, sans-serif";
const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
                 "#ff9da7", "#9c755f", "#bab0ac"];
const LAG_WINDOW_MS = 10 * 60 * 1000;
const lagSamples = [];

function asOf() {
  const value = document.getElementById("asof").value;
  return value ? value + "Z" : null;
}

function withAsOf(path) {
  const moment = asOf();
  if (!moment) return path;
  return `${path}${path.includes("?") ? "&" : "?"}as_of=${encodeURIComponent(moment)}`;
}

async function getJson(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) {
    throw new Error(typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail));
  }
  return body;
}

function showError(card, error) {
  const line = card.querySelector(".error");
  line.hidden = !error;
  line.textContent = error ? error.message : "";
  if (error) card.dataset.state = "error";
}

function fillTable(card, columns, rows) {
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  columns.forEach(column => {
    const th = document.createElement("th");
    th.textContent = column;
    head.appendChild(th);
  });
  const body = table.createTBody();
  rows.forEach(row => {
    const tr = body.insertRow();
    columns.forEach(column => {
      const td = tr.insertCell();
      const value = row[column];
      td.textContent = value === null || value === undefined ? "" : value;
      td.dataset.column = column;
      if (typeof value === "number") td.className = "n";
    });
  });
  card.querySelector(".table").replaceChildren(table);
}

function draw(id, type, data, options) {
  const canvas = document.getElementById(`${id}-chart`);
  const chart = Chart.getChart(canvas);
  if (chart && chart.config.type === type) {
    chart.data = data;
    chart.options = options;
    chart.update();
  } else {
    if (chart) chart.destroy();
    new Chart(canvas, { type, data, options });
  }
}

function ready(card, url) {
  showError(card, null);
  card.dataset.url = url;
  card.dataset.state = "ready";
}

const label = value => (value === null || value === undefined ? "(none)" : String(value));
// Long names are shortened on the axis only (the chart's data and the table keep them whole).
const shortLabel = { callback(value) {
  const text = this.getLabelForValue(value);
  return text.length > 24 ? `${text.slice(0, 23)}…` : text;
} };
const horizontal = { indexAxis: "y", plugins: { legend: { display: false } },
                     scales: { x: { beginAtZero: true }, y: { ticks: shortLabel } } };

// Each report card: its endpoint, and how its answer becomes a chart and a table.
const PANELS = {
  "top": {
    path: "/analytics/orders/top?limit=10",
    show(card, answer) {
      draw("top", "bar", {
        labels: answer.rows.map(r => label(r.delivery_date)),
        datasets: [{ label: "open orders", data: answer.rows.map(r => r.open_orders),
                     backgroundColor: PALETTE[0] }],
      }, { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } });
      fillTable(card, answer.columns, answer.rows);
    },
  },
  "by-status": {
    path: "/analytics/orders?status=open",
    show(card, answer) {
      const dates = [...new Set(answer.rows.map(r => label(r.delivery_date)))];
      const statuses = [...new Set(answer.rows.map(r => label(r.status)))];
      const datasets = statuses.map((status, i) => ({
        label: status, backgroundColor: PALETTE[i % PALETTE.length],
        data: dates.map(date => answer.rows
          .filter(r => label(r.delivery_date) === date && label(r.status) === status)
          .reduce((sum, r) => sum + r.open_orders, 0)),
      }));
      draw("by-status", "bar", { labels: dates, datasets },
           { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } });
      fillTable(card, answer.columns, answer.rows);
    },
  },
  "products": {
    path: "/analytics/orders/product",
    show(card, answer) {
      const rows = answer.rows.slice(0, 20);
      draw("products", "bar", {
        labels: rows.map(r => `${label(r.product_name)} (#${label(r.product_id)})`),
        datasets: [{ label: "pending quantity", data: rows.map(r => r.total_quantity),
                     backgroundColor: PALETTE[1] }],
      }, horizontal);
      fillTable(card, answer.columns, rows);
    },
  },
  "customers": {
    path: "/analytics/orders/customers?status=pending&limit=10",
    show(card, answer) {
      draw("customers", "bar", {
        labels: answer.rows.map(r => `${label(r.customer_name)} (#${label(r.customer_id)})`),
        datasets: [{ label: "pending orders", data: answer.rows.map(r => r.pending_orders),
                     backgroundColor: PALETTE[4] }],
      }, horizontal);
      fillTable(card, answer.columns, answer.rows);
    },
  },
};

async function refreshReports() {
  let freshness = null;
  await Promise.all(Object.entries(PANELS).map(async ([id, panel]) => {
    const card = document.getElementById(id);
    const url = withAsOf(panel.path);
    try {
      const answer = await getJson(url);
      panel.show(card, answer);
      ready(card, url);
      freshness = answer.freshness;
    } catch (error) {
      showError(card, error);
    }
  }));
  if (freshness && freshness.commit_time) {
    const moment = asOf();
    document.getElementById("freshness").textContent = (moment ? `as of ${moment} · ` : "") +
      `data reflects source commit ${freshness.commit_time} (LSN ${freshness.commit_lsn})`;
  }
}

function clock(ms) {
  return new Date(ms).toISOString().slice(11, 19);
}

async function refreshLag() {
  const card = document.getElementById("lag");
  try {
    const status = await getJson("/status");
    const now = Date.now();
    lagSamples.push({ at: now, lag: status.lag ? status.lag.seconds : null,
                      age: status.seconds_since_source_commit,
                      bytes: status.lag ? status.lag.bytes : null,
                      retained: status.lag ? status.lag.retained_wal_bytes : null });
    while (lagSamples.length && lagSamples[0].at < now - LAG_WINDOW_MS) lagSamples.shift();
    draw("lag", "line", {
      labels: lagSamples.map(s => clock(s.at)),
      datasets: [
        { label: "lag behind the source (s)", data: lagSamples.map(s => s.lag),
          borderColor: PALETTE[2], backgroundColor: PALETTE[2], pointRadius: 1.5 },
        { label: "age of the last applied commit (s)", data: lagSamples.map(s => s.age),
          borderColor: PALETTE[0], backgroundColor: PALETTE[0], pointRadius: 1.5 },
      ],
    }, { scales: { y: { beginAtZero: true, title: { display: true, text: "seconds" } },
                   x: { ticks: { maxTicksLimit: 6 } } } });
    const recent = lagSamples.slice(-5).reverse().map(s => ({
      time: clock(s.at), lag_seconds: s.lag, commit_age_seconds: s.age,
      lag_bytes: s.bytes, retained_wal_bytes: s.retained }));
    fillTable(card, ["time", "lag_seconds", "commit_age_seconds", "lag_bytes",
                     "retained_wal_bytes"], recent);
    ready(card, "/status");
  } catch (error) {
    showError(card, error);
  }
}

// The order's versions as floating bars from valid_from to valid_to, cut at the as-of time.
async function showOrder() {
  const card = document.getElementById("order");
  const orderId = document.getElementById("order-id").value;
  if (!orderId) return;
  const url = `/analytics/orders/${encodeURIComponent(orderId)}/history`;
  try {
    const story = await getJson(url);
    const moment = asOf() ? Date.parse(asOf()) : Date.now();
    const versions = story.versions
      .filter(v => Date.parse(v.valid_from) <= moment)
      .map(v => ({ ...v, valid_to: v.valid_to && Date.parse(v.valid_to) <= moment
                   ? v.valid_to : null }));
    if (!versions.length) throw new Error(`order ${orderId} is not in the history at that time`);
    const end = v => (v.valid_to ? Date.parse(v.valid_to) : moment);
    draw("order", "bar", {
      labels: versions.map((v, i) => `${i + 1}. ${label(v.status)}`),
      datasets: [{ label: "status", data: versions.map(v => [Date.parse(v.valid_from), end(v)]),
                   backgroundColor: versions.map((v, i) => PALETTE[i % PALETTE.length]),
                   minBarLength: 4 }],
    }, { indexAxis: "y", plugins: { legend: { display: false } },
         scales: { x: { min: Date.parse(versions[0].valid_from), max: moment,
                        ticks: { maxTicksLimit: 4,
                                 callback: value => new Date(value).toISOString()
                                   .slice(0, 19).replace("T", " ") } } } });
    fillTable(card, ["status", "valid_from", "valid_to", "seconds_in_status", "operation"],
              versions.map(v => ({ ...v, seconds_in_status:
                Math.round((end(v) - Date.parse(v.valid_from)) / 1000) })));
    card.dataset.orderId = orderId;
    ready(card, url);
  } catch (error) {
    showError(card, error);
  }
}

document.getElementById("order-form").addEventListener("submit", event => {
  event.preventDefault();
  showOrder();
});
document.getElementById("asof").addEventListener("change", () => {
  refreshReports();
  showOrder();
});
document.getElementById("asof-now").addEventListener("click", () => {
  document.getElementById("asof").value = "";
  refreshReports();
  showOrder();
});

refreshReports();
refreshLag();
setInterval(() => { if (!asOf()) refreshReports(); }, 2000);
setInterval(refreshLag, 2000);
