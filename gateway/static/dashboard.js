// Live dashboard: redraws from the server-sent "dashboard" event. Text goes in with
// textContent only, never as HTML, so a barcode stays a barcode.
"use strict";
(function () {
  const root = document.getElementById("dashboard");
  if (!root || !window.EventSource) return;
  const bagUrl = root.dataset.bagUrl;
  const SVG = "http://www.w3.org/2000/svg";

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function bagLink(bagNo) {
    const a = el("a", bagNo);
    a.href = bagUrl + encodeURIComponent(bagNo);
    return a;
  }
  function row(cells) {
    const tr = el("tr");
    for (const c of cells) {
      const td = el("td");
      if (c instanceof Node) td.appendChild(c); else td.textContent = c === null ? "" : String(c);
      tr.appendChild(td);
    }
    return tr;
  }
  function fill(tbody, rows, emptyText, cols) {
    tbody.replaceChildren();
    if (!rows.length) {
      const td = el("td", emptyText);
      td.colSpan = cols;
      const tr = el("tr"); tr.appendChild(td); tbody.appendChild(tr);
      return;
    }
    rows.forEach((r) => tbody.appendChild(r));
  }
  function chart(d) {
    const g = document.getElementById("chart-bars");
    if (!g) return;
    const h = 160;
    const kinds = ["bagged", "picked_up", "arrived"];
    for (const rect of g.querySelectorAll("rect.bar")) rect.remove();
    for (let hour = 0; hour < 24; hour++) {
      kinds.forEach((kind, i) => {
        const v = d.hours[kind][hour];
        const bh = Math.round((v / d.hours_max) * h * 10) / 10;
        const r = document.createElementNS(SVG, "rect");
        r.setAttribute("class", "bar " + kind);
        r.setAttribute("x", hour * 30 + i * 9 + 2);
        r.setAttribute("y", h - bh);
        r.setAttribute("width", 8);
        r.setAttribute("height", bh);
        const t = document.createElementNS(SVG, "title");
        t.textContent = hour + ":00 " + kind + ": " + v;
        r.appendChild(t);
        g.appendChild(r);
      });
    }
    document.getElementById("chart-max").textContent = String(d.hours_max);
  }
  function render(d) {
    document.getElementById("updated").textContent = d.updated;
    document.getElementById("total-today").textContent = d.total_today;
    document.getElementById("devices-online").textContent = d.devices.online;
    document.getElementById("devices-total").textContent = d.devices.total;
    document.getElementById("handovers-today").textContent = d.handovers_today;
    document.getElementById("late-count").textContent = d.late_count;
    document.getElementById("exceptions-open").textContent = d.exceptions_count;
    document.getElementById("nav-exceptions-count").textContent = d.exceptions_count;
    const byStatus = document.querySelector("#by-status tbody");
    byStatus.replaceChildren(...d.by_status.map((s) => {
      const tr = row([s.label, s.count]);
      tr.lastChild.className = "num";
      return tr;
    }));
    fill(document.querySelector("#late tbody"),
      d.late.map((b) => row([bagLink(b.bag_no), b.status, b.due, b.late_min + " min"])),
      document.getElementById("text-no-late").textContent, 4);
    fill(document.querySelector("#recent tbody"),
      d.recent.map((b) => row([bagLink(b.bag_no), b.status, b.parcels, b.weight_g, b.closed])),
      document.getElementById("text-no-bags").textContent, 5);
    chart(d);
  }

  const live = document.getElementById("live");
  const source = new EventSource(root.dataset.stream);
  source.addEventListener("dashboard", (ev) => render(JSON.parse(ev.data)));
  source.addEventListener("open", () => live.classList.add("on"));
  source.addEventListener("error", () => live.classList.remove("on"));
})();
