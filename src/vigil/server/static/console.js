// Vigil's console: fills the server-rendered shell from the JSON API.
// Every text that comes from the API is put in the page as text (textContent, attribute values),
// never parsed as HTML: entity names and label values come from scrape targets.
"use strict";

(function () {
  const TOKEN_KEY = "vigil.token";
  const main = document.getElementById("main");
  const content = document.getElementById("content");
  const banner = document.getElementById("banner");
  const page = main.dataset.page;
  const ident = main.dataset.id;

  // ---- token: kept for this tab only, sent as a header only ------------------------------------
  const tokenForm = document.getElementById("token-form");
  const tokenInput = document.getElementById("token");
  const tokenState = document.getElementById("token-state");
  function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
  function showTokenState() { tokenState.textContent = token() ? "token set for this tab" : "read-only"; }
  tokenForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    if (tokenInput.value) sessionStorage.setItem(TOKEN_KEY, tokenInput.value);
    tokenInput.value = "";
    showTokenState();
    load();
  });
  document.getElementById("token-forget").addEventListener("click", function () {
    sessionStorage.removeItem(TOKEN_KEY);
    showTokenState();
    load();
  });
  showTokenState();

  // ---- helpers ------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(message, status) { super(message); this.status = status; }
  }

  async function api(path, options) {
    const opts = Object.assign({ cache: "no-store" }, options || {});
    opts.headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
    if (token()) opts.headers.Authorization = "Bearer " + token();
    let resp;
    try {
      resp = await fetch(path, opts);
    } catch (err) {
      throw new ApiError("Vigil did not answer: " + err.message, 0);
    }
    const isJson = (resp.headers.get("Content-Type") || "").indexOf("json") >= 0;
    const body = isJson ? await resp.json() : null;
    if (!resp.ok) {
      let msg = (body && body.error) || resp.statusText;
      if (resp.status === 401) msg += " (type a token in the Token field)";
      throw new ApiError(msg, resp.status);
    }
    return body;
  }

  async function apiBlob(path) {
    const headers = token() ? { Authorization: "Bearer " + token() } : {};
    const resp = await fetch(path, { headers: headers, cache: "no-store" });
    if (!resp.ok) throw new ApiError(resp.statusText, resp.status);
    return resp.blob();
  }

  function h(tag, attrs) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, String(value));
    }
    for (let i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) child.forEach(function (c) { append(node, c); });
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }

  function num(x, digits) {
    if (x === null || x === undefined || !isFinite(x)) return "n/a";
    const d = digits === undefined ? 3 : digits;
    const abs = Math.abs(x);
    if (abs !== 0 && (abs >= 1e5 || abs < 1e-3)) return Number(x).toExponential(2);
    return Number(x).toFixed(d).replace(/\.?0+$/, "") || "0";
  }

  function when(ts) {
    if (!ts) return "n/a";
    return new Date(ts * 1000).toLocaleString(undefined, { hour12: false });
  }

  function ago(ts) {
    if (!ts) return "";
    const s = Math.max(0, Date.now() / 1000 - ts);
    if (s < 90) return Math.round(s) + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    return Math.round(s / 3600) + " h ago";
  }

  function duration(s) {
    if (s < 90) return Math.round(s) + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    return (s / 3600).toFixed(1) + " h";
  }

  function showBanner(text) {
    banner.textContent = text;
    banner.hidden = !text;
  }

  function table(headers, rows, caption, id) {
    const head = h("tr", null, headers.map(function (c) {
      return h("th", { scope: "col", class: c.num ? "num" : null, text: c.label || c });
    }));
    return h("div", { class: "table-wrap" },
      h("table", { id: id }, caption ? h("caption", { class: "muted", text: caption }) : null,
        h("thead", null, head), h("tbody", null, rows)));
  }

  function entityLink(entity) {
    return h("a", { href: "/ui/entities/" + encodeURIComponent(entity), text: entity });
  }

  function incidentLink(id) {
    return h("a", { href: "/ui/incidents/" + encodeURIComponent(id), text: id });
  }

  function alarmBadge(on) {
    return h("span", { class: on ? "badge alarm" : "badge ok", text: on ? "ALARM" : "ok" });
  }

  function sparkline(values, entity) {
    const finite = values.filter(function (v) { return v !== null; });
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("viewBox", "0 0 120 24");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    const label = finite.length
      ? "score of " + entity + " over 15 min: min " + num(Math.min.apply(null, finite)) + ", max " +
        num(Math.max.apply(null, finite)) + ", last " + num(finite[finite.length - 1])
      : "no score history for " + entity;
    svg.setAttribute("aria-label", label);
    const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    title.textContent = label;
    svg.appendChild(title);
    if (finite.length > 1) {
      const step = 120 / (values.length - 1);
      const points = [];
      values.forEach(function (v, i) {
        if (v !== null) points.push((i * step).toFixed(1) + "," + (23 - 22 * Math.min(1, Math.max(0, v))).toFixed(1));
      });
      const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
      line.setAttribute("points", points.join(" "));
      svg.appendChild(line);
    }
    return svg;
  }

  function fact(label, value, id, raw) {
    return [h("dt", { text: label }), h("dd", { id: id, "data-value": raw === undefined ? null : raw }, value)];
  }

  function done() {
    content.setAttribute("aria-busy", "false");
    performance.mark("vigil-rendered");
    document.body.dataset.rendered = "1";
  }

  function fail(err) {
    content.replaceChildren(h("p", { id: "failure", text: err.message }));
    if (err.status === 404) {
      document.title = "Not found · Vigil";
      main.querySelector("h1").textContent = "Not found";
    }
    content.setAttribute("aria-busy", "false");
    document.body.dataset.rendered = "1";
  }

  // ---- charts -------------------------------------------------------------------------------------
  function chart(target, opts) {
    // opts: {t, series: [{label, v, color, width}], periods, height, yRange}
    const width = Math.max(280, target.clientWidth || 600);
    const periods = opts.periods || [];
    const style = getComputedStyle(document.documentElement);
    const shade = style.getPropertyValue("--chart-alarm").trim() || "rgba(180,35,24,0.15)";
    const axisColor = style.getPropertyValue("--muted").trim() || "#57606a";
    const gridColor = style.getPropertyValue("--line").trim() || "#d0d7de";
    const plot = new uPlot({
      width: width,
      height: opts.height || 180,
      scales: { x: { time: true }, y: opts.yRange ? { range: opts.yRange } : {} },
      axes: [
        { stroke: axisColor, grid: { stroke: gridColor } },
        { stroke: axisColor, grid: { stroke: gridColor }, size: 60 },
      ],
      series: [{}].concat(opts.series.map(function (s) {
        return { label: s.label, stroke: s.color, width: s.width || 1.5, dash: s.dash, spanGaps: false };
      })),
      hooks: {
        drawClear: [function (u) {
          const ctx = u.ctx;
          ctx.save();
          ctx.fillStyle = shade;
          periods.forEach(function (p) {
            const x0 = u.valToPos(p.start, "x", true);
            const x1 = Math.max(x0 + 2, u.valToPos(p.end, "x", true));
            ctx.fillRect(x0, u.bbox.top, x1 - x0, u.bbox.height);
          });
          ctx.restore();
        }],
      },
    }, [opts.t].concat(opts.series.map(function (s) { return s.v; })), target);
    return plot;
  }

  function describeSeries(values) {
    const finite = values.filter(function (v) { return v !== null; });
    if (!finite.length) return "no samples";
    return "min " + num(Math.min.apply(null, finite)) + ", max " + num(Math.max.apply(null, finite)) +
      ", last " + num(finite[finite.length - 1]) + " (" + finite.length + " samples)";
  }

  // ---- pages --------------------------------------------------------------------------------------
  async function nowPage() {
    const data = await api("/v1/overview");
    showBanner(data.prometheus_error
      ? "Prometheus cannot be reached (" + data.prometheus_error + "): scores are Vigil's own; sparklines and data warnings are missing."
      : "");
    const parts = [];
    parts.push(h("h2", { text: "Open incidents (" + data.incidents.length + ")" }));
    parts.push(data.incidents.length ? table(["incident", "started", "entities", "alarm on"], data.incidents.map(function (i) {
      return h("tr", { class: "alarm" },
        h("td", null, incidentLink(i.id)),
        h("td", { text: when(i.started) + " (" + ago(i.started) + ")" }),
        h("td", null, i.entities.map(function (e, k) { return [k ? ", " : "", entityLink(e.entity)]; })),
        h("td", { text: i.entities.filter(function (e) { return e.alarm; }).length + " of " + i.entities.length }));
    })) : h("p", { class: "muted", text: "None." }));
    parts.push(h("h2", { text: "Data warnings (" + data.warnings.length + ")" }));
    parts.push(data.warnings.length ? h("ul", { id: "warnings" }, data.warnings.map(function (w) {
      const labels = Object.entries(w.labels).map(function (kv) { return kv[0] + "=" + kv[1]; }).join(", ");
      return h("li", null, h("strong", { text: w.name }), " ", h("span", { class: "muted", text: labels }));
    })) : h("p", { class: "muted", text: data.prometheus_error ? "Unknown: Prometheus cannot be reached." : "None." }));
    const alarms = data.entities.filter(function (e) { return e.alarm; }).length;
    parts.push(h("h2", { text: "Entities (" + data.entities.length + ", " + alarms + " in alarm)" }));
    const fragment = document.createDocumentFragment();
    data.entities.forEach(function (e) {
      fragment.appendChild(h("tr", { class: e.alarm ? "alarm" : null, "data-entity": e.entity, "data-timestamp": e.timestamp },
        h("td", null, entityLink(e.entity)),
        h("td", { class: "num", "data-value": e.score, text: num(e.score) }),
        h("td", null, alarmBadge(e.alarm)),
        h("td", { text: e.top_metric ? e.top_metric + " (" + Math.round(e.top_share * 100) + " %)" : "" }),
        h("td", null, sparkline(e.spark, e.entity)),
        h("td", { class: "hide-narrow" }, e.incident ? incidentLink(e.incident) : ""),
        h("td", { class: "hide-narrow muted", text: ago(e.timestamp) })));
    });
    parts.push(table(["entity", { label: "score", num: true }, "alarm", "top signal", "last 15 min", "incident", "scored"],
      [fragment]));
    content.replaceChildren.apply(content, parts);
    done();
  }

  async function entityPage() {
    const params = new URLSearchParams(location.search);
    const windowParam = params.get("window") || "1h";
    const data = await api("/v1/history/" + encodeURIComponent(ident) + "?window=" + encodeURIComponent(windowParam));
    showBanner(data.prometheus_error
      ? "Prometheus cannot be reached (" + data.prometheus_error + "): the charts are missing; the numbers are Vigil's own."
      : "");
    const top = data.contributions[0];
    const picker = h("select", { id: "window", "aria-label": "window",
      onchange: function (ev) { location.search = "?window=" + encodeURIComponent(ev.target.value); } },
      ["15m", "1h", "6h", "1d", "7d"].map(function (w) {
        return h("option", { value: w, selected: w === windowParam ? "selected" : null, text: w });
      }));
    const facts = h("dl", { class: "facts" },
      fact("score now", num(data.score_now) + " at " + when(data.timestamp), "score-now", data.score_now),
      fact("threshold", num(data.threshold), "threshold", data.threshold),
      fact("alarm", alarmBadge(data.alarm_now), "alarm-now", data.alarm_now ? 1 : 0),
      fact("top signal", top ? top.metric : "none", "top-metric", top ? top.metric : ""),
      fact("its value", top ? num(top.value) + " (normal " + num(top.baseline) + ")" : "n/a", "top-deviation",
        top && top.value !== null && top.baseline !== null ? top.value - top.baseline : null),
      fact("model", [data.model.name + " v" + data.model.version + " ", h("a", { href: "/ui/models", text: "models" })],
        "model", data.model.version));
    facts.querySelector("#score-now").dataset.timestamp = data.timestamp;
    const parts = [facts, h("p", null, h("label", { for: "window", text: "Window " }), picker)];

    parts.push(h("h2", { text: "Score and threshold" }));
    const scoreFig = h("figure", { id: "score-chart" });
    parts.push(scoreFig);
    parts.push(h("h2", { text: "Alarm periods (" + data.periods.length + ")" }));
    parts.push(data.periods.length ? table(["start", "end", "lasted", "top signals"], data.periods.map(function (p) {
      return h("tr", null, h("td", { text: when(p.start) }), h("td", { text: when(p.end) }),
        h("td", { text: duration(p.end - p.start + data.step_s) }), h("td", { text: p.top.join(", ") }));
    }), null, "periods") : h("p", { class: "muted", text: "No alarm in this window." }));
    parts.push(h("h2", { text: "Attribution now" }));
    parts.push(table(["signal", { label: "value", num: true }, { label: "normal", num: true }, { label: "share", num: true }],
      data.contributions.map(function (c) {
        return h("tr", null, h("td", { text: c.metric }), h("td", { class: "num", text: num(c.value) }),
          h("td", { class: "num", text: num(c.baseline) }), h("td", { class: "num", text: Math.round(c.share * 100) + " %" }));
      })));
    parts.push(h("h2", { text: "Signals" }));
    const grid = h("div", { class: "charts" });
    parts.push(grid);
    content.replaceChildren.apply(content, parts);

    if (data.score) {
      const thr = data.score.t.map(function () { return data.threshold; });
      chart(scoreFig, { t: data.score.t, periods: data.periods, yRange: [0, 1], series: [
        { label: "score", v: data.score.v, color: cssVar("--chart-score") },
        { label: "threshold", v: thr, color: cssVar("--chart-threshold"), dash: [6, 4] },
      ] });
      scoreFig.appendChild(h("figcaption", { text: "Score: " + describeSeries(data.score.v) + "; threshold " +
        num(data.threshold) + "; " + data.periods.length + " alarm period(s) shaded." }));
    } else {
      scoreFig.appendChild(h("figcaption", { text: "No score history in Prometheus for this window." }));
    }
    Object.entries(data.signals).forEach(function (kv) {
      const fig = h("figure", { "data-signal": kv[0] }, h("figcaption", { text: kv[0] + ": " + describeSeries(kv[1].v) }));
      grid.appendChild(fig);
      chart(fig, { t: kv[1].t, periods: data.periods, height: 140, series: [
        { label: kv[0], v: kv[1].v, color: cssVar("--chart-score") }] });
    });
    done();
  }

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function evidenceTable(evidence) {
    const rows = (evidence.top_metrics || []).map(function (m) {
      return h("tr", null, h("td", { text: m.metric }), h("td", { class: "num", text: num(m.value) }),
        h("td", { class: "num", text: num(m.baseline) }), h("td", { class: "num", text: num(m.current) }),
        h("td", { class: "num", text: Math.round((m.share || 0) * 100) + " %" }),
        h("td", null, m.link ? h("a", { href: m.link, rel: "noopener", text: "graph" }) : ""));
    });
    const deps = (evidence.dependencies || []).map(function (d) {
      const failures = Object.entries(d.failures_per_s || {}).map(function (kv) { return kv[0] + " " + num(kv[1]) + "/s"; });
      return h("li", { text: d.name + " (" + d.kind + "): latency " + num(d.latency_s) + " s (normal " +
        num(d.latency_baseline_s) + " s)" + (failures.length ? "; failures " + failures.join(", ") : "") });
    });
    return [
      table(["signal", { label: "at the alarm", num: true }, { label: "normal", num: true }, { label: "now", num: true },
        { label: "share", num: true }, "Prometheus"], rows),
      deps.length ? [h("h4", { text: "Dependencies" }), h("ul", null, deps)] : null,
      (evidence.problems || []).length ? h("p", { class: "muted", text: "Not gathered: " + evidence.problems.join("; ") }) : null,
    ];
  }

  async function incidentPage() {
    const data = await api("/v1/incidents/" + encodeURIComponent(ident));
    const inc = data.incident;
    let messages = [];
    let chatError = "";
    try {
      messages = (await api("/v1/chat/messages/" + encodeURIComponent(ident))).messages;
    } catch (err) {
      chatError = err.message;
    }
    const prom = main.dataset.prometheus;
    const am = main.dataset.alertmanager;
    const members = inc.entities.map(function (e) { return e.entity; });
    const selector = 'vigil_anomaly_score{entity=~"' + members.map(function (m) {
      return m.replace(/[\\.+*?()|[\]{}^$]/g, "\\\\$&").replace(/"/g, '\\"');
    }).join("|") + '"}';
    const graph = prom + "/graph?g0.expr=" + encodeURIComponent(selector) + "&g0.tab=0&g0.range_input=1h";
    const silence = am + "/#/alerts?filter=" + encodeURIComponent('{incident="' + inc.id + '"}');
    const parts = [h("dl", { class: "facts" },
      fact("status", inc.status, "status", inc.status),
      fact("started", when(inc.started) + " (" + ago(inc.started) + ")", "started", inc.started),
      inc.resolved ? fact("resolved", when(inc.resolved), "resolved", inc.resolved) : null,
      fact("acknowledged", inc.acknowledged ? when(inc.acknowledged) + (inc.feedback_by ? " by " + inc.feedback_by : "") : "no", "acknowledged"),
      inc.verdict ? fact("verdict", inc.verdict, "verdict", inc.verdict) : null,
      inc.note ? fact("note", inc.note, "note", null) : null,
      fact("links", [h("a", { href: graph, rel: "noopener", text: "scores in Prometheus" }), " · ",
        h("a", { href: silence, rel: "noopener", text: "alerts in Alertmanager" })], "links"))];
    parts.push(h("h2", { text: "Entities" }));
    parts.push(table(["entity", "since", "alarm", { label: "score", num: true }, "top signals"], inc.entities.map(function (e) {
      return h("tr", { class: e.alarm ? "alarm" : null }, h("td", null, entityLink(e.entity)), h("td", { text: when(e.since) }),
        h("td", null, alarmBadge(e.alarm)), h("td", { class: "num", text: num(e.score) }),
        h("td", { text: e.top.map(function (c) { return c.metric + " " + num(c.value) + " (normal " + num(c.baseline) + ")"; }).join("; ") }));
    })));
    parts.push(h("h2", { text: "What Vigil said (" + messages.length + " message" + (messages.length === 1 ? "" : "s") + ")" }));
    if (chatError) parts.push(h("p", { class: "muted", text: "The chat record cannot be read: " + chatError }));
    messages.forEach(function (m, i) {
      const ex = m.explanation;
      parts.push(h("section", { class: "message", "data-index": i },
        h("h3", { text: m.title }),
        h("p", { class: "muted", text: when(m.at) + " · " + (m.delivered === true ? "delivered" : m.delivered === false ? "NOT delivered" : "no chat configured") }),
        ex ? h("dl", { class: "facts" }, fact("cause", ex.signature.replace(/_/g, " "), null, ex.signature),
          fact("explained by", ex.explainer + (ex.confidence ? " (confidence " + num(ex.confidence, 2) + ")" : "")),
          ex.runbook ? fact("runbook", ex.runbook) : null) : null,
        h("pre", { class: "message", text: m.body }),
        ex ? [h("h4", { text: "Evidence" }), evidenceTable(ex.evidence || {})] : null));
    });
    parts.push(h("h2", { text: "Feedback" }));
    const note = h("input", { id: "feedback-note", "aria-label": "note", placeholder: "note (optional)" });
    function feedback(action) {
      return async function () {
        try {
          await api("/v1/incidents/" + encodeURIComponent(inc.id) + "/feedback", {
            method: "POST", headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ action: action, by: "console", note: note.value }) });
          load();
        } catch (err) { showBanner("Feedback not recorded: " + err.message); }
      };
    }
    parts.push(h("p", null, note, " ",
      h("button", { type: "button", onclick: feedback("ack"), text: "Acknowledge" }), " ",
      h("button", { type: "button", onclick: feedback("confirmed"), text: "Confirm" }), " ",
      h("button", { type: "button", onclick: feedback("false_positive"), text: "False positive" })));
    content.replaceChildren.apply(content, parts);
    done();
  }

  let lastAction = "";  // the outcome of the last promote or rollback, shown again after the page reloads

  async function modelsPage() {
    const data = await api("/v1/registry");
    showBanner(data.prometheus_error ? "Prometheus cannot be reached (" + data.prometheus_error + "): drift state unknown." : "");
    const byName = {};
    data.versions.forEach(function (v) { (byName[v.name] = byName[v.name] || []).push(v); });
    const parts = [];
    async function act(path, body, question) {
      if (!window.confirm(question)) return;
      try {
        const result = await api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
        lastAction = "Done: " + JSON.stringify(result);
        load();
      } catch (err) {
        lastAction = "Refused: " + err.message;
        document.getElementById("action-result").textContent = lastAction;
      }
    }
    parts.push(h("p", { id: "action-result", role: "status", text: lastAction }));
    Object.keys(byName).sort().forEach(function (name) {
      const versions = byName[name];
      const serving = data.serving[name] || data.serving["default"] || null;
      const drift = data.drift[name] || [];
      parts.push(h("h2", { text: name }));
      parts.push(h("p", null, "mode: " + (data.modes[name] || "paging") + " · serving: " +
        (serving ? "v" + serving.version + (serving.fast_path ? " (fast path)" : "") : "see the champion") + " · drift: ",
        drift.length ? h("span", { class: "badge alarm", text: drift.join(", ") }) : h("span", { class: "badge ok", text: "none" }),
        " ", h("button", { type: "button", "data-action": "rollback", "data-model": name, text: "Roll back champion",
          onclick: function () { act("/v1/models/rollback", { model: name }, "Move " + name + "'s champion back to the version it held before?"); } })));
      parts.push(table(["version", "aliases", "created", { label: "event F1", num: true }, { label: "AUC-PR", num: true },
        { label: "alert rate", num: true }, "data hash", ""], versions.slice().reverse().map(function (v) {
        const m = v.metrics || {};
        const pick = function (k) { return m["holdout_" + k] !== undefined ? m["holdout_" + k] : m["cv_" + k]; };
        const champion = v.aliases.indexOf("champion") >= 0;
        return h("tr", { "data-version": v.version },
          h("td", { text: v.version }), h("td", { text: v.aliases.join(", ") }), h("td", { text: when(v.created_at) }),
          h("td", { class: "num", text: num(pick("event_f1")) }), h("td", { class: "num", text: num(pick("auc_pr")) }),
          h("td", { class: "num", text: num(pick("alert_rate")) }), h("td", { class: "muted", text: (v.data_hash || "").slice(0, 12) }),
          h("td", null, champion ? "" : h("button", { type: "button", "data-action": "promote", "data-model": name,
            "data-version": v.version, text: "Promote",
            onclick: function () { act("/v1/models/promote", { version: v.version, model: name }, "Make v" + v.version + " the champion of " + name + "?"); } })));
      })));
    });
    if (!data.versions.length) parts.push(h("p", { class: "muted", text: "No model is registered yet: run `vigil train`." }));
    parts.push(h("h2", { text: "Recorded actions" }));
    parts.push(data.actions.length ? table(["when", "action", "model", "from", "to", "by"], data.actions.map(function (a) {
      return h("tr", null, h("td", { text: when(a.at) }), h("td", { text: a.action }), h("td", { text: a.model || "" }),
        h("td", { text: a.previous || "" }), h("td", { text: a.current || "" }), h("td", { text: a.by || "" }));
    })) : h("p", { class: "muted", text: "None yet." }));
    content.replaceChildren.apply(content, parts);
    done();
  }

  async function validationPage() {
    const data = await api("/v1/validation/latest");
    const r = data.result;
    const parts = [h("p", { text: "Campaign " + data.run + " (" + ((r.meta || {}).profile || "") + " profile, seed " + ((r.meta || {}).seed) + ")" })];
    const rows = [
      ["event precision", r.event_precision], ["event recall", r.event_recall], ["event F1", r.event_f1],
      ["onset recall", r.onset_recall], ["false alert runs per hour of quiet time", r.false_alert_runs_per_hour],
      ["alarm on in quiet time", r.quiet_alarm_fraction], ["median time to detect (s)", r.median_detect_s],
      ["median time to chat (s)", r.median_chat_s], ["signature accuracy", r.signature_accuracy],
    ];
    parts.push(h("dl", { class: "facts", id: "summary" }, rows.map(function (row) { return fact(row[0], num(row[1]), null, row[1]); })));
    parts.push(h("h2", { text: "Faults" }));
    parts.push(table(["fault", "detected", { label: "detect s", num: true }, { label: "chat s", num: true }, "cause named"],
      (r.faults || []).map(function (f) {
        return h("tr", null, h("td", { text: f.type }), h("td", { text: f.detected ? "yes" : "NO" }),
          h("td", { class: "num", text: num(f.detect_s, 1) }), h("td", { class: "num", text: num(f.chat_s, 1) }),
          h("td", { text: f.signature_match === undefined || f.signature_match === null ? "" : f.signature_match ? "right" : "wrong" }));
      })));
    parts.push(h("h2", { text: "Plots" }));
    const plots = h("div", { class: "plots" });
    parts.push(plots);
    content.replaceChildren.apply(content, parts);
    for (const name of data.plots) {
      const blob = await apiBlob("/v1/validation/latest/" + encodeURIComponent(name));
      plots.appendChild(h("figure", null, h("img", { src: URL.createObjectURL(blob), alt: "plot " + name, loading: "lazy" }),
        h("figcaption", { text: name })));
    }
    done();
  }

  const pages = { now: nowPage, entity: entityPage, incident: incidentPage, models: modelsPage, validation: validationPage };

  function load() {
    const render = pages[page];
    if (!render) {  // the 404 shell: nothing to fetch
      document.body.dataset.rendered = "1";
      return;
    }
    render().catch(fail);
  }

  load();
})();
