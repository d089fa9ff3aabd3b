/** report.md and chart.svg rendering (no dependencies, no browser). */
import { fmtUs, type Report } from "./report.js";

const byId = (r: Report) => new Map(r.workloads.map((w) => [`${w.target}|${w.workload_id}`, w]));

function ratio(a: number | null | undefined, b: number | null | undefined): string {
  if (a == null || b == null || b === 0) return "—";
  return `${(a / b).toFixed(2)}×`;
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/\|/g, "\\|");
}

export function renderMarkdown(r: Report): string {
  const e = r.environment;
  const L: string[] = [];
  L.push(`# mcpq load-test report (${r.mode})`, "");
  L.push(
    `- machine: **${e.machine_label}** — ${e.cores} × ${e.cpu_model}, ${e.total_mem_gib} GiB, host \`${e.hostname}\``,
  );
  L.push(
    `- node ${e.node_version}, ${e.nats_server_version ?? "nats-server ?"}, git ${e.git_commit ?? "(none)"}, ulimit -n ${e.open_files_limit ?? "?"}`,
  );
  L.push(
    `- date ${e.date}; load average at start ${e.load_avg_at_start?.join(" / ") ?? "?"}${(e.load_avg_at_start?.[0] ?? 0) > e.cores ? " — **machine was busy: treat numbers with suspicion**" : ""}`,
    "",
  );
  L.push(
    "Latencies are HDR-histogram percentiles of successful, verified echo calls (µs precision, 3 significant digits).",
    "Open-loop workloads (baseline, bombing, soak) measure from the *scheduled* send time. Throughput counts verified responses only.",
    "",
  );

  // comparison table
  const m = byId(r);
  const rawAny =
    r.workloads.find(
      (w) => w.target === "raw-jetstream" && w.workload_id === "raw-jetstream-c64",
    ) ?? r.workloads.find((w) => w.target === "raw-jetstream");
  const Cs = [
    ...new Set(
      r.workloads
        .filter((w) => w.workload_id.startsWith("saturation-http-c"))
        .map((w) => w.in_flight ?? 0),
    ),
  ].sort((a, b) => a - b);
  L.push(...goalTable(r));
  if (Cs.length) {
    L.push(
      "## Saturation (closed loop, Streamable HTTP): mcpq vs SDK reference vs raw JetStream",
      "",
    );
    L.push(
      "| C | mcpq msg/s | SDK msg/s | mcpq/SDK | raw JS msg/s | mcpq/raw JS | mcpq p99 | SDK p99 | p99 mcpq/SDK | mcpq cpu % | SDK cpu % | mcpq CPU µs/call (edge + worker + nats) | SDK CPU µs/call | CPU/call mcpq/SDK |",
    );
    L.push("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (const C of Cs) {
      const q = m.get(`mcpq|saturation-http-c${C}`);
      const s = m.get(`sdk-reference|saturation-http-c${C}`);
      const raw = m.get(`raw-jetstream|raw-jetstream-c${C}`) ?? rawAny;
      L.push(
        `| ${C} | ${q?.throughput_msg_per_s ?? "—"} | ${s?.throughput_msg_per_s ?? "—"} | ${ratio(q?.throughput_msg_per_s, s?.throughput_msg_per_s)} | ` +
          `${raw ? `${raw.throughput_msg_per_s}${raw.in_flight !== C ? ` (C=${raw.in_flight})` : ""}` : "—"} | ${ratio(q?.throughput_msg_per_s, raw?.throughput_msg_per_s)} | ` +
          `${fmtUs(q?.latency_p99_us)} | ${fmtUs(s?.latency_p99_us)} | ${ratio(q?.latency_p99_us, s?.latency_p99_us)} | ${q?.cpu_pct ?? "—"} | ${s?.cpu_pct ?? "—"} | ` +
          `${cpuCell(q)} | ${cpuOf(s, "total") ?? "—"} | ${ratio(cpuOf(q, "total"), cpuOf(s, "total"))} |`,
      );
    }
    L.push("");
  }

  L.push("## All workloads", "");
  L.push(
    "| workload | target | transport | sessions | in flight | s | requests | msg/s | p50 | p95 | p99 | p99.9 | err % | errors | RSS MiB | KiB/session | cpu % |",
  );
  L.push("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|");
  for (const w of r.workloads) {
    const errs = Object.entries(w.errors_by_code)
      .map(([k, v]) => `${k}:${v}`)
      .join(" ");
    L.push(
      `| ${w.workload_id} | ${w.target} | ${w.transport} | ${w.sessions} | ${w.in_flight ?? "—"} | ${w.duration_s} | ${w.requests} | ${w.throughput_msg_per_s} | ` +
        `${fmtUs(w.latency_p50_us)} | ${fmtUs(w.latency_p95_us)} | ${fmtUs(w.latency_p99_us)} | ${fmtUs(w.latency_p999_us)} | ${(w.error_rate * 100).toFixed(2)} | ${esc(errs) || "—"} | ` +
        `${w.edge_rss_mib ?? "—"} | ${w.per_session_kib ?? "—"} | ${w.cpu_pct ?? "—"} |`,
    );
  }
  L.push("");

  const bomb = r.workloads.filter((w) => w.workload_id.startsWith("bombing"));
  for (const b of bomb) {
    const x = (b.extra ?? {}) as Record<string, unknown>;
    const g = (x.generator ?? {}) as Record<string, unknown>;
    const crit = (x.criterion ?? {}) as Record<string, unknown>;
    const svc = (k: string) => (x[k] ?? {}) as { p50_us?: number | null; p99_us?: number | null };
    L.push(`## ${b.workload_id} (${b.target})`, "");
    if (g.plain) {
      const cc = (x.client_classes ?? {}) as Record<string, number>;
      const growth = crit.rss_growth_mib as number | null;
      const adm = x.admitted_p99_us as number | null;
      const rec = x.recovery_s as number | null;
      L.push(
        `Plain clients: no \`io.mcpq/*\` deadline hints, ${Number(g.lanes_per_session) * b.sessions} keep-alive connections over ${b.sessions} sessions, ${Number(g.timeout_ms) / 1000} s client timeout.`,
        "",
        "| ok | refused | timed out | other error | never sent | admitted p99 | edge RSS growth | probe recovery |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        `| ${cc.ok} | ${cc.refused} | **${cc.timed_out}** | ${cc.error} | ${cc.never_sent} | ${fmtUs(adm)} | ${growth === null ? "—" : `${Math.round(growth)} MiB`} | ${rec === null ? "not recovered" : `${rec} s`} |`,
        "",
        `Goals (issue 17): 0 timed out ${cc.timed_out === 0 ? "yes" : "**no**"}; admitted p99 ≤ 2 s ${adm !== null && adm <= 2e6 ? "yes" : "**no**"}; RSS growth ≤ 128 MiB ${growth !== null && growth <= 128 ? "yes" : "**no**"}; probe back within 2 s ${rec !== null && rec <= 2 ? "yes" : "**no**"}.`,
        "",
      );
    }
    L.push(
      `- offered ${x.offered_rate_msg_per_s}/s (${x.multiplier}× capacity ${x.capacity_msg_per_s}/s) for ${b.duration_s} s over ${b.sessions} sessions; ` +
        `the generator (own process, ${g.cpu_pct}% CPU; ${g.lanes_per_session} lane(s)/session × window ${g.window}) put **${x.achieved_send_rate_msg_per_s}/s** on the wire; answers came back at ${x.answered_rate_msg_per_s}/s`,
    );
    L.push(
      `- every scheduled request: ${JSON.stringify(x.classes)} — scheduled ${x.scheduled}, unaccounted ${x.unaccounted}` +
        ` (held = never sent: no free generator lane within ${g.max_hold_ms} ms)`,
    );
    L.push(
      `- answer time from send: ok p50 ${fmtUs(svc("ok_service").p50_us)} / p99 ${fmtUs(svc("ok_service").p99_us)}; rejections p50 ${fmtUs(svc("rejected_service").p50_us)} / p99 ${fmtUs(svc("rejected_service").p99_us)}`,
    );
    L.push(
      `- recovery: ${x.recovery_s === null ? `not within ${x.recovery_bound_s} s` : `${x.recovery_s} s`} (pre-storm probe p50 ${fmtUs(x.pre_storm_p50_us as number)})`,
    );
    L.push(
      `- edge RSS before/after/peak: ${x.edge_rss_before_mib} / ${x.edge_rss_after_mib} / ${x.edge_rss_peak_mib} MiB`,
    );
    L.push(
      `- done-criterion: only ok or explicit rejection ${crit.only_ok_or_rejected ? "yes" : "**no**"}; RSS growth ${crit.rss_growth_mib} MiB (≤ 256: ${crit.rss_ok ? "yes" : "**no**"}); recovery ≤ 5 s ${crit.recovery_ok ? "yes" : "**no**"}; generator reached ≥ 90 % of the offered rate ${crit.offered_10x_sent ? "yes" : "no"}`,
      "",
    );
  }
  const flood = r.workloads.filter((w) => w.workload_id.startsWith("flood"));
  for (const f of flood) {
    const x = (f.extra ?? {}) as Record<string, unknown>;
    L.push(`## ${f.workload_id} (${f.target})`, "");
    L.push(
      `- held ${f.sessions}/${x.target_sessions} sessions (${f.transport}) ramped in ${x.ramp_s} s; still held after probe: ${x.held_after_probe}; open failures: ${JSON.stringify(x.open_failures)}`,
    );
    L.push(
      `- edge RSS ${x.edge_rss_before_mib} → ${x.edge_rss_held_mib} MiB ⇒ **${f.per_session_kib} KiB/session**; probe @16 in flight: ${f.throughput_msg_per_s} msg/s, p99 ${fmtUs(f.latency_p99_us)}`,
      "",
    );
  }
  if (r.skipped.length) {
    L.push("## Skipped", "");
    for (const s of r.skipped) L.push(`- **${s.workload_id}**: ${esc(s.reason)}`);
    L.push("");
  }
  L.push("![latency vs throughput](chart.svg)", "");
  return L.join("\n");
}

type W = Report["workloads"][number];

/** µs of CPU per call of one process (or `total`) from a saturation workload. */
function cpuOf(w: W | undefined, k: string): number | null {
  const c = (w?.extra?.cpu_us_per_call ?? null) as Record<string, number | null> | null;
  return c?.[k] ?? null;
}

function cpuCell(w: W | undefined): string {
  const t = cpuOf(w, "total");
  if (t === null) return "—";
  return `${t} (${cpuOf(w, "edge") ?? "?"} + ${cpuOf(w, "worker") ?? "?"} + ${cpuOf(w, "nats") ?? "?"})`;
}

/** The issue-17 goal table: mcpq vs the SDK reference at C=64 over Streamable HTTP. */
function goalTable(r: Report): string[] {
  const q = r.workloads.find((w) => w.target === "mcpq" && w.workload_id === "saturation-http-c64");
  const s = r.workloads.find(
    (w) => w.target === "sdk-reference" && w.workload_id === "saturation-http-c64",
  );
  if (!q || !s) return [];
  const floor = r.workloads.find(
    (w) => w.target === "node-http-floor" && w.workload_id === "saturation-http-c64",
  );
  const broker = r.workloads.find(
    (w) => w.target === "broker-floor" && w.workload_id === "broker-floor-c64",
  );
  const rt = (a: number | null | undefined, b: number | null | undefined) =>
    a == null || b == null || b === 0 ? null : a / b;
  const verdict = (v: number | null, ok: (x: number) => boolean) =>
    v === null ? "—" : ok(v) ? "yes" : "**no**";
  const tput = rt(q.throughput_msg_per_s, s.throughput_msg_per_s);
  const p99 = rt(q.latency_p99_us, s.latency_p99_us);
  const cpu = rt(cpuOf(q, "total"), cpuOf(s, "total"));
  const edge = rt(cpuOf(q, "edge"), cpuOf(s, "total"));
  const f = (v: number | null) => (v === null ? "—" : `${v.toFixed(2)}×`);
  return [
    "## Goals (issue 17): mcpq vs the SDK reference, closed loop C=64, Streamable HTTP",
    "",
    "CPU per call is each serving process's CPU time over the window (`/proc/<pid>/stat` utime + stime, the process and its forks) divided by the verified calls answered in it; it is the robust figure on a shared box, throughput and p99 move with the load average.",
    "",
    "| | mcpq | SDK reference | mcpq / SDK | goal | met |",
    "|---|---:|---:|---:|---:|---|",
    `| throughput (msg/s) | ${q.throughput_msg_per_s} | ${s.throughput_msg_per_s} | ${f(tput)} | ≥ 1.2× | ${verdict(tput, (x) => x >= 1.2)} |`,
    `| p99 | ${fmtUs(q.latency_p99_us)} | ${fmtUs(s.latency_p99_us)} | ${f(p99)} | ≤ 1.0× | ${verdict(p99, (x) => x <= 1)} |`,
    `| CPU µs per call, all serving processes | ${cpuCell(q)} | ${cpuOf(s, "total") ?? "—"} | ${f(cpu)} | ≤ 1.0× | ${verdict(cpu, (x) => x <= 1)} |`,
    `| CPU µs per call, edge alone | ${cpuOf(q, "edge") ?? "—"} | ${cpuOf(s, "total") ?? "—"} | ${f(edge)} | ≤ 0.4× | ${verdict(edge, (x) => x <= 0.4)} |`,
    `| load generator CPU µs per call (own process) | ${cpuOf(q, "generator") ?? "—"} | ${cpuOf(s, "generator") ?? "—"} | | | |`,
    "",
    ...(floor
      ? [
          `The node:http floor (src/http-floor-server.ts: parse the POST, answer one SSE event, no MCP logic) cost **${cpuOf(floor, "total") ?? "—"} µs per call** in the same run (${floor.throughput_msg_per_s} msg/s): the part of the SDK's and of the edge's CPU per call that node:http itself takes on this box. The edge's own work over it: ${
            cpuOf(q, "edge") != null && cpuOf(floor, "total") != null
              ? `${cpuOf(q, "edge")! - cpuOf(floor, "total")!} µs`
              : "—"
          }; the SDK's: ${
            cpuOf(s, "total") != null && cpuOf(floor, "total") != null
              ? `${cpuOf(s, "total")! - cpuOf(floor, "total")!} µs`
              : "—"
          }.`,
          "",
        ]
      : []),
    ...brokerFloorLines(q, s, floor, broker),
  ];
}

/**
 * What the two floors leave: node:http's cost plus the broker path's (`--shape stored`) is the
 * least an edge + worker with mcpq's delivery guarantees can cost per call before any MCP work.
 */
function brokerFloorLines(q: W, s: W, floor: W | undefined, broker: W | undefined): string[] {
  const b = cpuOf(broker, "total");
  if (!broker || b === null) return [];
  const h = cpuOf(floor, "total");
  const sdk = cpuOf(s, "total");
  const mcpq = cpuOf(q, "total");
  const both = h === null ? null : h + b;
  const lines = [
    `The broker floor (src/raw-jetstream.ts \`--shape stored\`: a request stored in a file-backed work queue with its PubAck, a pull delivery, the answer stored with its PubAck before the ack, the answer read on its subject; mcpq's own publish primitive and write batching, no MCP logic) cost **${b} µs per call** (client ${cpuOf(broker, "client") ?? "—"} + worker ${cpuOf(broker, "worker") ?? "—"} + nats-server ${cpuOf(broker, "nats") ?? "—"}; ${broker.throughput_msg_per_s} msg/s at C=64).`,
  ];
  if (both !== null && sdk !== null && mcpq !== null)
    lines.push(
      `Both floors together: ${h} + ${b} = **${both} µs per call, ${(both / sdk).toFixed(2)}× the SDK reference's ${sdk} µs**, before any MCP work. mcpq's own work over them (edge and worker logic, the recording's publish and PubAck): ${mcpq - both} µs; the SDK's MCP layer over node:http: ${sdk - h!} µs. The ≤ 1.0× goal would leave mcpq ${sdk - both} µs for all of it.`,
    );
  lines.push("");
  return lines;
}

/** Latency (log scale) p50/p99 vs throughput, saturation C=16/64/256, mcpq beside the SDK reference. */
export function renderSvg(r: Report): string {
  const W = 940;
  const H = 520;
  const ml = 80,
    mr = 250,
    mt = 40,
    mb = 60;
  const pw = W - ml - mr;
  const ph = H - mt - mb;
  const series: {
    name: string;
    color: string;
    dash: string;
    pts: { x: number; y: number; C: number }[];
  }[] = [];
  const add = (target: string, label: string, color: string, prefix: string) => {
    const ws = r.workloads
      .filter(
        (w) =>
          w.target === target &&
          w.workload_id.startsWith(prefix) &&
          w.in_flight !== null &&
          w.latency_p50_us !== null,
      )
      .sort((a, b) => (a.in_flight ?? 0) - (b.in_flight ?? 0));
    if (!ws.length) return;
    series.push({
      name: `${label} p50`,
      color,
      dash: "",
      pts: ws.map((w) => ({ x: w.throughput_msg_per_s, y: w.latency_p50_us!, C: w.in_flight! })),
    });
    series.push({
      name: `${label} p99`,
      color,
      dash: "6 4",
      pts: ws.map((w) => ({
        x: w.throughput_msg_per_s,
        y: w.latency_p99_us ?? w.latency_p50_us!,
        C: w.in_flight!,
      })),
    });
  };
  add("mcpq", "mcpq (HTTP)", "#d9480f", "saturation-http-c");
  add("mcpq", "mcpq (WS)", "#f59f00", "saturation-ws-c");
  add("sdk-reference", "SDK reference", "#1971c2", "saturation-http-c");
  // raw JetStream shares the axes only when it is on a comparable scale; otherwise it is noted in text
  const mcpMax = Math.max(0, ...series.flatMap((s) => s.pts.map((p) => p.x)));
  const raw = r.workloads.filter((w) => w.target === "raw-jetstream" && w.latency_p50_us !== null);
  const rawOffScale =
    raw.length > 0 &&
    mcpMax > 0 &&
    Math.max(...raw.map((w) => w.throughput_msg_per_s)) > 3 * mcpMax;
  if (!rawOffScale) add("raw-jetstream", "raw JetStream", "#2f9e44", "raw-jetstream-c");
  const all = series.flatMap((s) => s.pts);
  const xMax = Math.max(1, ...all.map((p) => p.x)) * 1.1;
  const yMinRaw = Math.min(...all.map((p) => p.y), 1e9);
  const yMaxRaw = Math.max(...all.map((p) => p.y), 1);
  const yMin = Math.pow(10, Math.floor(Math.log10(Math.max(1, all.length ? yMinRaw : 100))));
  const yMax = Math.pow(10, Math.ceil(Math.log10(Math.max(yMin * 10, yMaxRaw))));
  const X = (x: number) => ml + (x / xMax) * pw;
  const Y = (y: number) =>
    mt +
    ph -
    ((Math.log10(Math.max(y, yMin)) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) *
      ph;
  const o: string[] = [];
  o.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
  );
  o.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  o.push(
    `<text x="${ml}" y="22" font-size="15" font-weight="bold">Latency vs throughput — closed loop, C = in-flight requests (${r.environment.machine_label})</text>`,
  );
  // grid + axes
  const step = niceStep(xMax / 6);
  for (let x = 0; x <= xMax; x += step) {
    o.push(`<line x1="${X(x)}" y1="${mt}" x2="${X(x)}" y2="${mt + ph}" stroke="#eee"/>`);
    o.push(
      `<text x="${X(x)}" y="${mt + ph + 18}" text-anchor="middle">${x >= 1000 ? `${x / 1000}k` : x}</text>`,
    );
  }
  for (let e = Math.log10(yMin); e <= Math.log10(yMax) + 1e-9; e++) {
    const y = Math.pow(10, e);
    o.push(`<line x1="${ml}" y1="${Y(y)}" x2="${ml + pw}" y2="${Y(y)}" stroke="#ddd"/>`);
    o.push(
      `<text x="${ml - 6}" y="${Y(y) + 4}" text-anchor="end">${y >= 1e6 ? `${y / 1e6} s` : y >= 1e3 ? `${y / 1e3} ms` : `${y} µs`}</text>`,
    );
  }
  o.push(
    `<line x1="${ml}" y1="${mt + ph}" x2="${ml + pw}" y2="${mt + ph}" stroke="#333"/><line x1="${ml}" y1="${mt}" x2="${ml}" y2="${mt + ph}" stroke="#333"/>`,
  );
  o.push(
    `<text x="${ml + pw / 2}" y="${H - 18}" text-anchor="middle">throughput (verified msg/s)</text>`,
  );
  o.push(
    `<text transform="translate(18 ${mt + ph / 2}) rotate(-90)" text-anchor="middle">latency (log scale)</text>`,
  );
  for (const s of series) {
    const d = s.pts
      .map((p, i) => `${i ? "L" : "M"}${X(p.x).toFixed(1)} ${Y(p.y).toFixed(1)}`)
      .join(" ");
    o.push(
      `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2" ${s.dash ? `stroke-dasharray="${s.dash}"` : ""}/>`,
    );
    for (const p of s.pts) {
      o.push(
        `<circle cx="${X(p.x).toFixed(1)}" cy="${Y(p.y).toFixed(1)}" r="4" fill="${s.dash ? "#fff" : s.color}" stroke="${s.color}" stroke-width="2"><title>${s.name} C=${p.C}: ${p.x} msg/s, ${fmtUs(p.y)}</title></circle>`,
      );
      o.push(
        `<text x="${(X(p.x) + 6).toFixed(1)}" y="${(Y(p.y) - 6).toFixed(1)}" fill="${s.color}" font-size="10">C=${p.C}</text>`,
      );
    }
  }
  series.forEach((s, i) => {
    const y = mt + 10 + i * 20;
    o.push(
      `<line x1="${ml + pw + 20}" y1="${y}" x2="${ml + pw + 50}" y2="${y}" stroke="${s.color}" stroke-width="2" ${s.dash ? `stroke-dasharray="${s.dash}"` : ""}/>`,
    );
    o.push(`<text x="${ml + pw + 56}" y="${y + 4}">${esc(s.name)}</text>`);
  });
  if (rawOffScale) {
    const y0 = mt + 10 + series.length * 20 + 16;
    o.push(
      `<text x="${ml + pw + 20}" y="${y0}" fill="#2f9e44" font-weight="bold">raw JetStream (off scale)</text>`,
    );
    raw.forEach((w, i) => {
      const y = y0 + 32 * i + 16;
      o.push(
        `<text x="${ml + pw + 20}" y="${y}" fill="#2f9e44" font-size="11">C=${w.in_flight}: ${w.throughput_msg_per_s} msg/s</text>`,
      );
      o.push(
        `<text x="${ml + pw + 20}" y="${y + 14}" fill="#2f9e44" font-size="11">p50 ${fmtUs(w.latency_p50_us)} · p99 ${fmtUs(w.latency_p99_us)}</text>`,
      );
    });
  }
  if (!series.length) o.push(`<text x="${ml + 20}" y="${mt + 30}">no saturation data</text>`);
  o.push("</svg>");
  return o.join("\n");
}

function niceStep(raw: number): number {
  const p = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1e-9))));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}
