// riverbed's dashboard: buttons ask before they act, and a running run's page follows
// the run. No dependencies, no build: this file is served as it is.
"use strict";

// A form with data-confirm asks first; "yes" tells the server it was asked (without this
// script, the server asks on a page of its own).
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.dataset.confirm;
  if (!question) return;
  if (!window.confirm(question)) {
    event.preventDefault();
    return;
  }
  const confirmed = form.querySelector("input[name=confirmed]");
  if (confirmed) confirmed.value = "yes";
});

// An element with data-live="URL" polls URL (the run's JSON) every second: each element
// with data-field=NAME takes the text fields[NAME]; #chart takes the chart. When the run
// has ended, the page reloads once to show how (its error, its final counters).
function follow(root) {
  const url = root.dataset.live;
  const again = (ms) => window.setTimeout(poll, ms);
  async function poll() {
    let data;
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(String(response.status));
      data = await response.json();
    } catch (error) {
      again(5000); // the dashboard restarting, or the network: try again later
      return;
    }
    for (const [name, text] of Object.entries(data.fields)) {
      for (const element of document.querySelectorAll(`[data-field="${CSS.escape(name)}"]`)) {
        element.textContent = text;
      }
    }
    const chart = document.getElementById("chart");
    if (chart && data.chart) chart.innerHTML = data.chart; // SVG escaped by the server
    if (data.done) {
      window.location.reload();
      return;
    }
    again(1000);
  }
  again(1000);
}

document.querySelectorAll("[data-live]").forEach(follow);
