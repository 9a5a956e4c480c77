// The page of an otelprof report: reads the embedded samples, builds the flame graph tree for
// the chosen sample type and filters, and draws it with d3-flame-graph. In a diff report every
// sample belongs to the base (side 0) or the new (side 1) profile; widths come from the new
// side and colours from the change in share: red grew, blue shrank.
import flamegraph, { tooltip } from "d3-flame-graph";
import { select } from "d3-selection";
import "./viewer.css";

const HIGHLIGHT = "#E600E6";
const TIME_UNITS_NS = { nanoseconds: 1, microseconds: 1e3, milliseconds: 1e6, seconds: 1e9 };

function formatValue(value, unit) {
  if (!value) return "0";
  if (unit in TIME_UNITS_NS) {
    const ns = value * TIME_UNITS_NS[unit];
    if (ns < 1e3) return `${ns}ns`;
    if (ns < 1e6) return `${(ns / 1e3).toFixed(1)}µs`;
    const ms = ns / 1e6;
    if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : 1)}ms`;
    return `${(ms / 1000).toFixed(2)}s`;
  }
  const steps = unit === "bytes" ? ["B", "KiB", "MiB", "GiB", "TiB"] : ["", "k", "M", "G", "T"];
  const base = unit === "bytes" ? 1024 : 1000;
  let amount = value;
  let i = 0;
  while (amount >= base && i < steps.length - 1) {
    amount /= base;
    i += 1;
  }
  return i === 0 ? `${value}${steps[0]}` : `${amount.toFixed(1)}${steps[i]}`;
}

function percent(value, total) {
  return total > 0 ? `${((100 * value) / total).toFixed(1)}%` : "-";
}

function points(newShare, baseShare) {
  const change = 100 * (newShare - baseShare);
  return `${change >= 0 ? "+" : ""}${change.toFixed(1)} pts`;
}

function element(tag, attributes, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function labelled(labelText, control) {
  const label = element("label", {}, labelText + " ");
  label.appendChild(control);
  return label;
}

function choice(id, values, noneLabel) {
  const select_ = element("select", { id });
  select_.appendChild(element("option", { value: "-1" }, noneLabel));
  values.forEach((value, index) => {
    if (index > 0) select_.appendChild(element("option", { value: String(index) }, value));
  });
  if (values.length <= 1) select_.disabled = true;
  return select_;
}

class Viewer {
  constructor(root, data) {
    this.data = data;
    this.diff = data.mode === "diff";
    this.samples = data.samples;
    this.state = {
      type: data.defaultType,
      service: -1,
      thread: -1,
      endpoint: -1,
      trace: "",
      from: null,
      to: null,
      search: "",
    };
    this.totals = [0, 0];
    this.buildPage(root);
    this.chart = this.makeChart();
    this.render();
    window.addEventListener("resize", () => this.resize());
  }

  get unit() {
    return this.data.types[this.state.type].unit;
  }

  buildPage(root) {
    const data = this.data;
    root.appendChild(element("h1", {}, data.title));
    root.appendChild(element("p", { id: "summary" }, data.subtitle));
    const controls = element("div", { id: "controls" });
    const type = element("select", { id: "type" });
    data.types.forEach((t, index) => {
      type.appendChild(element("option", { value: String(index) }, `${t.name} (${t.unit})`));
    });
    type.value = String(this.state.type);
    controls.appendChild(labelled("profile", type));
    controls.appendChild(labelled("service", choice("service", data.services, "all")));
    controls.appendChild(labelled("thread", choice("thread", data.threads, "all")));
    controls.appendChild(labelled("endpoint", choice("endpoint", data.endpoints, "all")));
    const trace = element("input", {
      id: "trace",
      list: "trace-ids",
      placeholder: "trace id (hex prefix)",
      size: "34",
    });
    const traceIds = element("datalist", { id: "trace-ids" });
    data.traces.slice(1, 2001).forEach((id) => traceIds.appendChild(element("option", { value: id })));
    controls.appendChild(labelled("trace", trace));
    controls.appendChild(traceIds);
    const span = String(data.spanSeconds);
    const range = { type: "number", min: "0", max: span, step: "1", size: "6" };
    controls.appendChild(labelled("from s", element("input", { id: "from", ...range, placeholder: "0" })));
    controls.appendChild(labelled("to s", element("input", { id: "to", ...range, placeholder: span })));
    controls.appendChild(labelled("search", element("input", { id: "search", placeholder: "function name" })));
    controls.appendChild(element("button", { id: "reset", type: "button" }, "reset zoom"));
    root.appendChild(controls);
    if (this.diff) {
      root.appendChild(
        element(
          "p",
          { id: "legend" },
          `width: ${data.sides[1]}; colour: change in share since ${data.sides[0]} ` +
            "(red grew, blue shrank, grey unchanged)",
        ),
      );
    }
    root.appendChild(element("div", { id: "details" }, "\u00a0"));
    root.appendChild(element("div", { id: "chart" }));
    root.appendChild(element("p", { id: "empty", hidden: "" }, "no samples match the filters"));
    if (this.diff) root.appendChild(element("table", { id: "changes" }));

    const on = (id, event, handler) => document.getElementById(id).addEventListener(event, handler);
    const number = (id) => {
      const text = document.getElementById(id).value.trim();
      return text === "" || Number.isNaN(Number(text)) ? null : Number(text);
    };
    on("type", "change", (e) => this.update({ type: Number(e.target.value) }));
    on("service", "change", (e) => this.update({ service: Number(e.target.value) }));
    on("thread", "change", (e) => this.update({ thread: Number(e.target.value) }));
    on("endpoint", "change", (e) => this.update({ endpoint: Number(e.target.value) }));
    on("trace", "change", (e) => this.update({ trace: e.target.value.trim().toLowerCase() }));
    on("from", "change", () => this.update({ from: number("from") }));
    on("to", "change", () => this.update({ to: number("to") }));
    on("search", "input", (e) => this.search(e.target.value.trim()));
    on("reset", "click", () => this.chart.resetZoom());
  }

  makeChart() {
    const tip = tooltip.defaultFlamegraphTooltip().text((d) => this.label(d));
    const chart = flamegraph()
      .width(this.chartWidth())
      .cellHeight(18)
      .transitionDuration(250)
      .minFrameSize(1)
      .sort(true)
      .tooltip(tip)
      .setDetailsElement(document.getElementById("details"))
      .setLabelHandler((d) => this.label(d))
      .setSearchMatch((d, term) => Boolean(term) && d.data.n.toLowerCase().includes(term.toLowerCase()))
      .setSearchHandler((results, sum, total) => {
        const details = document.getElementById("details");
        if (this.state.search) {
          details.textContent =
            `search "${this.state.search}": ${results.length} frames, ` +
            `${percent(sum, total)} of ${formatValue(total, this.unit)}`;
        }
      });
    if (this.diff) chart.setColorMapper((d) => this.diffColour(d));
    return chart;
  }

  chartWidth() {
    return Math.max(320, document.getElementById("chart").clientWidth || window.innerWidth - 32);
  }

  resize() {
    const width = this.chartWidth();
    if (width !== this.chart.width()) this.chart.width(width).update();
  }

  where(node) {
    if (node.f < 0) return "";
    const [, file, line] = this.data.functions[node.f];
    return line ? `${file}:${line}` : file;
  }

  label(d) {
    const node = d.data;
    const where = this.where(node);
    const head = where ? `${node.n}  ${where}` : node.n;
    if (!this.diff) {
      const total = this.totals[1];
      const unit = this.unit;
      return (
        `${head}  self ${formatValue(node.s, unit)} (${percent(node.s, total)})` +
        `  total ${formatValue(node.v, unit)} (${percent(node.v, total)})`
      );
    }
    const [baseTotal, newTotal] = this.totals;
    const share = (value, total) => (total > 0 ? value / total : 0);
    return (
      `${head}  self ${percent(node.bs, baseTotal)} -> ${percent(node.s, newTotal)} ` +
      `(${points(share(node.s, newTotal), share(node.bs, baseTotal))})` +
      `  total ${percent(node.b, baseTotal)} -> ${percent(node.v, newTotal)} ` +
      `(${points(share(node.v, newTotal), share(node.b, baseTotal))})`
    );
  }

  diffColour(d) {
    if (d.highlight) return HIGHLIGHT;
    const delta = d.data.d;
    const size = Math.max(d.data.v, Math.abs(delta));
    if (!delta || !size) return "rgb(220,220,220)";
    const strength = Math.min(1, Math.abs(delta) / size);
    const other = Math.round(225 * (1 - strength));
    return delta > 0 ? `rgb(255,${other},${other})` : `rgb(${other},${other},255)`;
  }

  keeps(i) {
    const s = this.samples;
    const state = this.state;
    if (s.type[i] !== state.type) return false;
    if (state.service >= 0 && s.service[i] !== state.service) return false;
    if (state.thread >= 0 && s.thread[i] !== state.thread) return false;
    if (state.endpoint >= 0 && s.endpoint[i] !== state.endpoint) return false;
    if (state.trace && !this.data.traces[s.trace[i]].startsWith(state.trace)) return false;
    if (state.from !== null && s.second[i] < state.from) return false;
    if (state.to !== null && s.second[i] > state.to) return false;
    return true;
  }

  tree() {
    const s = this.samples;
    const functions = this.data.functions;
    const root = { n: "all", f: -1, v: 0, b: 0, kids: new Map() };
    const totals = [0, 0];
    const add = (node, side, value) => {
      if (side) node.v += value;
      else node.b += value;
    };
    for (let i = 0; i < s.value.length; i += 1) {
      if (!this.keeps(i)) continue;
      const side = this.diff ? s.side[i] : 1;
      const value = s.value[i];
      totals[side] += value;
      let node = root;
      add(node, side, value);
      for (const f of this.data.stacks[s.stack[i]]) {
        let child = node.kids.get(f);
        if (!child) {
          child = { n: functions[f][0] || "[unknown]", f, v: 0, b: 0, kids: new Map() };
          node.kids.set(f, child);
        }
        add(child, side, value);
        node = child;
      }
    }
    this.totals = totals;
    const [baseTotal, newTotal] = totals;
    const finish = (node) => {
      // Code that ran only in the base has no width in the new profile: the table lists it.
      node.c = [...node.kids.values()].filter((child) => child.v > 0).map(finish);
      delete node.kids;
      node.s = node.v - node.c.reduce((sum, child) => sum + child.v, 0);
      node.bs = node.b - node.c.reduce((sum, child) => sum + child.b, 0);
      if (this.diff) {
        const baseShare = baseTotal > 0 ? node.b / baseTotal : 0;
        node.d = newTotal > 0 ? (node.v / newTotal - baseShare) * newTotal : 0;
      }
      return node;
    };
    return finish(root);
  }

  render() {
    const root = this.tree();
    const empty = root.v === 0;
    document.getElementById("empty").hidden = !empty;
    document.getElementById("chart").hidden = empty;
    const chartNode = select("#chart");
    if (!this.drawn) {
      chartNode.datum(root).call(this.chart);
      this.drawn = true;
    } else {
      this.chart.update(root);
    }
    if (this.state.search) this.chart.search(this.state.search);
    if (this.diff) this.renderChanges();
    document.body.dataset.rendered = String((this.renderCount = (this.renderCount || 0) + 1));
  }

  update(change) {
    Object.assign(this.state, change);
    this.render();
  }

  search(term) {
    this.state.search = term;
    if (term) this.chart.search(term);
    else this.chart.clear();
  }

  // Per function (name and file), the self share on each side; biggest changes first.
  renderChanges() {
    const s = this.samples;
    const [baseTotal, newTotal] = this.totals;
    const selfs = new Map();
    for (let i = 0; i < s.value.length; i += 1) {
      if (!this.keeps(i)) continue;
      const stack = this.data.stacks[s.stack[i]];
      if (!stack.length) continue;
      const leaf = stack[stack.length - 1];
      const entry = selfs.get(leaf) || [0, 0];
      entry[s.side[i]] += s.value[i];
      selfs.set(leaf, entry);
    }
    const rows = [...selfs.entries()].map(([f, [b, v]]) => {
      const baseShare = baseTotal > 0 ? b / baseTotal : 0;
      const newShare = newTotal > 0 ? v / newTotal : 0;
      return { f, baseShare, newShare, change: newShare - baseShare };
    });
    rows.sort((a, b) => Math.abs(b.change) - Math.abs(a.change));
    const table = document.getElementById("changes");
    table.textContent = "";
    const head = element("tr");
    for (const title of ["self share change", this.data.sides[0], this.data.sides[1], "function", "file:line"]) {
      head.appendChild(element("th", {}, title));
    }
    table.appendChild(head);
    for (const row of rows.slice(0, 15)) {
      const [name, file, line] = this.data.functions[row.f];
      const tr = element("tr", { class: row.change > 0 ? "grew" : row.change < 0 ? "shrank" : "" });
      tr.appendChild(element("td", {}, points(row.newShare, row.baseShare)));
      tr.appendChild(element("td", {}, `${(100 * row.baseShare).toFixed(1)}%`));
      tr.appendChild(element("td", {}, `${(100 * row.newShare).toFixed(1)}%`));
      tr.appendChild(element("td", {}, name));
      tr.appendChild(element("td", {}, line ? `${file}:${line}` : file));
      table.appendChild(tr);
    }
  }
}

const data = JSON.parse(document.getElementById("otelprof-data").textContent);
window.otelprofViewer = new Viewer(document.getElementById("otelprof-app"), data);
