/* Response timeline: SMART App Launch (EHR and standalone, authorization code + PKCE), FHIR reads in the browser,
 * the service's own assessment (POST /smart/api/timeline), and plain-SVG charts. No framework, nothing fetched
 * from outside the service and the FHIR server. The access token lives in this closure only: never in storage,
 * never sent to the service, never logged. */
(function () {
  "use strict";

  const SVGNS = "http://www.w3.org/2000/svg";
  const FETCH_TIMEOUT_MS = 20000;
  const STATE_PREFIX = "remission-cds-smart:";
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const OUTCOME_WORDS = {
    complete: "complete response / remission", partial: "partial response", minor: "minor response",
    stable: "stable", no_response: "no response", progression: "progression", relapse: "relapse",
    unconfirmed_progression: "possible progression (to confirm)", indeterminate: "indeterminate",
    not_evaluable: "not evaluable", baseline: "baseline",
  };
  const OUTCOME_COLOUR = {
    complete: "#146c2e", partial: "#0b5f7a", minor: "#3f4f86", stable: "#555555", no_response: "#555555",
    progression: "#b3261e", relapse: "#b3261e", unconfirmed_progression: "#8a4b00", indeterminate: "#595959",
    not_evaluable: "#595959", baseline: "#3d3d3d",
  };
  const REF_STYLE = {
    baseline: {stroke: "#3d3d3d", dash: "", short: "Baseline"},
    nadir: {stroke: "#1f5fa8", dash: "2 4", short: "Nadir"},
    response: {stroke: "#146c2e", dash: "8 4", short: "Response"},
    progression: {stroke: "#b3261e", dash: "8 4", short: "Progression"},
    "normal-low": {stroke: "#6b6b6b", dash: "4 3", short: "Normal low"},
    "normal-high": {stroke: "#6b6b6b", dash: "4 3", short: "Normal high"},
    limit: {stroke: "#8a5a00", dash: "6 3", short: "Limit"},
  };
  const SERIES_COLOUR = ["#1d2733", "#7a3e9d", "#0b6e6e"];

  let config = null;

  // ---------------------------------------------------------------- small DOM helpers
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false || v === "") continue;
      node.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }
  const $ = (id) => document.getElementById(id);
  function setStatus(text) { $("status").textContent = text; }
  function fail(title, detail) {
    const box = $("error");
    box.replaceChildren(el("h2", {text: title}), el("p", {text: detail || ""}));
    box.hidden = false;
    setStatus("");
    document.body.dataset.state = "error";
  }

  // ---------------------------------------------------------------- numbers and dates
  function fmt(x) {
    if (x === null || x === undefined || Number.isNaN(x)) return "—";
    let t;
    if (Number.isInteger(x)) t = String(x);
    else if (Math.abs(x) >= 10) t = x.toFixed(1).replace(/\.0$/, "");
    else t = String(Number(x.toPrecision(3)));
    return t.replace("-", "\u2212");
  }
  function parseDate(s) { const [y, m, d] = s.slice(0, 10).split("-").map(Number); return Date.UTC(y, m - 1, d); }
  function dateText(s) {
    if (!s) return "—";
    const t = new Date(parseDate(s));
    return `${t.getUTCDate()} ${MONTHS[t.getUTCMonth()]} ${t.getUTCFullYear()}`;
  }
  function monthText(ms) { const t = new Date(ms); return `${MONTHS[t.getUTCMonth()]} ${t.getUTCFullYear()}`; }
  function durationText(days) {
    if (days === null || days === undefined) return "—";
    if (days < 60) return `${days} days`;
    const months = Math.floor(days / 30.4375);
    if (months < 24) return `${months} months (${days} days)`;
    return `${(days / 365.25).toFixed(1)} years (${days} days)`;
  }

  // ---------------------------------------------------------------- network
  async function fetchJSON(url, options) {
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), FETCH_TIMEOUT_MS);
    try {
      const resp = await fetch(url, {...(options || {}), signal: ctrl.signal, credentials: "omit",
                                     referrerPolicy: "no-referrer", redirect: "error"});
      let body = null;
      const text = await resp.text();
      try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
      return {status: resp.status, ok: resp.ok, body};
    } catch (e) {
      return {status: 0, ok: false, body: null, error: e.name === "AbortError" ? "timed out" : "unreachable"};
    } finally {
      clearTimeout(timer);
    }
  }
  function outcomeText(body) {
    const issues = (body && body.issue) || [];
    return issues.map((i) => i.diagnostics || i.code).filter(Boolean).join("; ");
  }

  // ---------------------------------------------------------------- SMART launch
  function issProblem(iss) {
    let u;
    try { u = new URL(iss); } catch (e) { return "the iss parameter is not a URL"; }
    if (u.protocol !== "https:" && !(u.protocol === "http:" && config.allowHttp)) {
      return `the FHIR server must use https (plain http is off in this service's configuration)`;
    }
    const host = u.hostname.toLowerCase();
    const allowed = (config.allowedHosts || []).map((h) => h.toLowerCase());
    if (!allowed.includes(host) && !allowed.includes(`[${host}]`) && !allowed.includes(host.replace(/^\[|\]$/g, ""))) {
      return `the FHIR server ${u.host} is not in this service's fhir.allowed_hosts`;
    }
    if (u.username || u.password) return "the iss URL must not carry credentials";
    return null;
  }
  function b64url(bytes) {
    let s = "";
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function randomString(n) { const a = new Uint8Array(n); crypto.getRandomValues(a); return b64url(a); }
  async function pkce() {
    if (!window.crypto || !crypto.subtle) throw new Error("this page must be served over https (or from localhost) for PKCE");
    const verifier = randomString(48);
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
    return {verifier, challenge: b64url(new Uint8Array(digest))};
  }
  async function smartConfiguration(iss) {
    const r = await fetchJSON(`${iss}/.well-known/smart-configuration`, {headers: {Accept: "application/json"}});
    return r.ok && r.body && typeof r.body === "object" ? r.body : null;
  }
  function offersAuthorizationCode(conf) {
    if (!conf || !conf.authorization_endpoint || !conf.token_endpoint) return false;
    const grants = conf.grant_types_supported;
    return !Array.isArray(grants) || grants.includes("authorization_code");
  }
  function redirectUri() { return location.origin + config.redirectPath; }

  async function authorize(iss, conf, launch) {
    const {verifier, challenge} = await pkce();
    const state = randomString(24);
    sessionStorage.setItem(STATE_PREFIX + state, JSON.stringify({
      iss, verifier, tokenEndpoint: conf.token_endpoint, redirectUri: redirectUri(), clientId: config.clientId,
    }));
    const params = new URLSearchParams({
      response_type: "code", client_id: config.clientId, redirect_uri: redirectUri(),
      scope: launch ? config.scope : config.standaloneScope, state, aud: iss,
      code_challenge: challenge, code_challenge_method: "S256",
    });
    if (launch) params.set("launch", launch);
    setStatus("Signing in at the EHR…");
    const target = new URL(conf.authorization_endpoint);
    for (const [k, v] of params) target.searchParams.set(k, v);
    location.assign(target.toString());
  }

  async function ehrLaunch(iss, launch) {
    const problem = issProblem(iss);
    if (problem) return fail("This launch is refused", problem);
    setStatus("Reading the EHR's SMART configuration…");
    const conf = await smartConfiguration(iss);
    if (!offersAuthorizationCode(conf)) {
      return fail("The EHR offers no SMART authorization", `${iss}/.well-known/smart-configuration has no authorization code grant.`);
    }
    await authorize(iss, conf, launch);
  }

  async function completeAuthorization(q) {
    const key = STATE_PREFIX + q.get("state");
    const saved = sessionStorage.getItem(key);
    sessionStorage.removeItem(key);
    history.replaceState(null, "", config.redirectPath);   // the code must not stay in the address bar
    if (!saved) return fail("Sign-in could not be completed", "The authorization answer does not match a launch from this browser tab (state). Launch the app again.");
    const s = JSON.parse(saved);
    setStatus("Exchanging the authorization code…");
    const form = new URLSearchParams({grant_type: "authorization_code", code: q.get("code"),
                                      redirect_uri: s.redirectUri, client_id: s.clientId, code_verifier: s.verifier});
    const r = await fetchJSON(s.tokenEndpoint, {method: "POST", body: form,
                                                headers: {"Content-Type": "application/x-www-form-urlencoded", Accept: "application/json"}});
    if (!r.ok || !r.body || !r.body.access_token) {
      const why = r.body && (r.body.error_description || r.body.error);
      return fail("Sign-in failed", `The token endpoint answered ${r.status || r.error}${why ? ": " + why : ""}.`);
    }
    const tok = r.body;
    if (!tok.patient) return fail("No patient in context", "The EHR granted access but named no patient (launch/patient).");
    let appContext = null;
    if (typeof tok.appContext === "string") { try { appContext = JSON.parse(tok.appContext); } catch (e) { appContext = null; } }
    else if (tok.appContext && typeof tok.appContext === "object") appContext = tok.appContext;
    await loadPatient(s.iss, tok.patient, tok.access_token, {appContext, mode: "oauth"});
  }

  async function standalone(iss, patient) {
    const problem = issProblem(iss);
    if (problem) return fail("This launch is refused", problem);
    setStatus("Reading the FHIR server's SMART configuration…");
    const conf = await smartConfiguration(iss);
    if (offersAuthorizationCode(conf)) return authorize(iss, conf, null);
    if (!config.openSandbox) {
      return fail("This FHIR server offers no authorization", "Opening a record without a token is off (fhir.allow_unauthenticated).");
    }
    if (!patient) return listPatients(iss);
    await loadPatient(iss, patient, null, {mode: "open"});
  }

  async function listPatients(iss) {
    setStatus("Open sandbox: choose a patient");
    const r = await fetchJSON(`${iss}/Patient?_count=100`, {headers: {Accept: "application/fhir+json"}});
    if (!r.ok) return fail("The patient list could not be read", `${iss}/Patient answered ${r.status || r.error}.`);
    const items = ((r.body && r.body.entry) || []).map((e) => e.resource).filter((p) => p && p.id);
    const list = el("ul", {class: "patients"}, items.map((p) => {
      const url = `${config.redirectPath.replace(/app$/, "launch")}?iss=${encodeURIComponent(iss)}&patient=${encodeURIComponent(p.id)}`;
      return el("li", {}, el("a", {href: url, text: `${patientName(p) || p.id}`}), el("span", {class: "muted", text: ` (${p.id})`}));
    }));
    $("content").replaceChildren(el("section", {class: "launch-help"}, el("h2", {text: "Open sandbox — patients on " + iss}), list));
    document.body.dataset.state = "patients";
  }

  function help() {
    const base = location.origin + config.redirectPath.replace(/app$/, "launch");
    $("content").replaceChildren(el("section", {class: "launch-help"},
      el("h2", {text: "Launch the response timeline"}),
      el("p", {}, "From an EHR: register ", el("code", {text: base}), " as the SMART launch URL and ",
         el("code", {text: redirectUri()}), " as the redirect URI (client id ", el("code", {text: config.clientId}), ")."),
      el("p", {}, "Against the local sandbox FHIR server: ",
         el("code", {text: `${base}?iss=<FHIR base>&patient=<patient id>`}), " (hosts in fhir.allowed_hosts only).")));
    setStatus("");
    document.body.dataset.state = "help";
  }

  // ---------------------------------------------------------------- FHIR reads in the browser
  function patientName(p) {
    for (const n of (p && p.name) || []) {
      const t = n.text || [...(n.given || []), n.family || ""].join(" ").trim();
      if (t) return t;
    }
    return "";
  }
  function belongsTo(res, patientId) {
    if (!res || typeof res !== "object") return false;
    if (res.resourceType === "Patient") return res.id === patientId;
    const ref = (res.subject || res.patient || {}).reference;
    if (typeof ref !== "string" || !ref.includes("Patient/")) return true;
    return ref.split("/_history/")[0].split("/").pop() === patientId;
  }
  async function readAll(iss, relative, headers, patientId) {
    const origin = new URL(iss).origin;
    let url = `${iss}/${relative}`;
    const entries = [];
    for (let page = 0; page < (config.maxPages || 20) && url; page++) {
      const r = await fetchJSON(url, {headers});
      if (!r.ok || !r.body) {
        const why = r.status ? `HTTP ${r.status}${outcomeText(r.body) ? " (" + outcomeText(r.body) + ")" : ""}` : r.error;
        return {resourceType: "OperationOutcome", issue: [{severity: "error", code: "exception",
                diagnostics: `the browser could not read ${relative.split("?")[0]}: ${why}`}]};
      }
      if (r.body.resourceType !== "Bundle") return r.body;   // a read (Patient/id)
      for (const e of r.body.entry || []) {
        if (e.resource && e.resource.resourceType !== "OperationOutcome" && belongsTo(e.resource, patientId)) entries.push({resource: e.resource});
      }
      const next = (r.body.link || []).find((l) => l.relation === "next");
      url = null;
      if (next && next.url) {
        try { if (new URL(next.url, iss).origin === origin) url = new URL(next.url, iss).toString(); } catch (e) { url = null; }
      }
    }
    return {resourceType: "Bundle", type: "searchset", total: entries.length, entry: entries};
  }
  async function loadPatient(iss, patientId, token, opts) {
    iss = iss.replace(/\/+$/, "");
    const headers = {Accept: "application/fhir+json"};
    if (token) headers.Authorization = `Bearer ${token}`;
    if (opts.mode === "open") {
      const mode = $("mode");
      mode.textContent = `Open sandbox: data read from ${new URL(iss).host} without authorization (test data only).`;
      mode.hidden = false;
    }
    setStatus("Reading the patient's record from the FHIR server…");
    const keys = Object.keys(config.queries);
    const values = await Promise.all(keys.map((k) =>
      readAll(iss, config.queries[k].split("{{context.patientId}}").join(encodeURIComponent(patientId)), headers, patientId)));
    const prefetch = {};
    keys.forEach((k, i) => { prefetch[k] = values[i]; });
    setStatus("Assessing…");
    const r = await fetchJSON(`/smart/api/timeline?patient=${encodeURIComponent(patientId)}`, {
      method: "POST", headers: {"Content-Type": "application/json", Accept: "application/json"},
      body: JSON.stringify({patientId, prefetch}),
    });
    if (!r.ok) return fail("The assessment could not be made", outcomeText(r.body) || `the service answered ${r.status || r.error}`);
    render(r.body, opts.appContext);
  }

  // ---------------------------------------------------------------- markdown of the card detail (small subset)
  function inline(text) {
    const held = [];
    let t = text.replace(/\\([\\`*_\[\]|<>~()#+\-.!])/g, (m, c) => { held.push(c); return `\uE000${held.length - 1}\uE001`; });
    const frag = document.createDocumentFragment();
    const re = /\*\*(.+?)\*\*|_(.+?)_|\[([^\]]+)\]\((https?:\/\/[^)\s]+)\)/g;
    const restore = (s) => s.replace(/\uE000(\d+)\uE001/g, (m, i) => held[Number(i)]);
    let last = 0;
    let m;
    while ((m = re.exec(t)) !== null) {
      if (m.index > last) frag.append(restore(t.slice(last, m.index)));
      if (m[1] !== undefined) frag.append(el("strong", {text: restore(m[1])}));
      else if (m[2] !== undefined) frag.append(el("em", {text: restore(m[2])}));
      else frag.append(el("a", {href: restore(m[4]), rel: "noopener noreferrer", target: "_blank", text: restore(m[3])}));
      last = re.lastIndex;
    }
    if (last < t.length) frag.append(restore(t.slice(last)));
    return frag;
  }
  function markdown(md) {
    const out = el("div", {class: "detail"});
    const lines = (md || "").split("\n");
    let list = null;
    let table = null;
    for (const line of lines) {
      if (/^\s*\|/.test(line)) {
        const cells = line.trim().replace(/^\||\|$/g, "").split(/(?<!\\)\|/).map((c) => c.trim());
        if (cells.every((c) => /^-+$/.test(c))) continue;
        if (!table) { table = el("table"); out.append(table); table.append(el("tr", {}, cells.map((c) => el("th", {}, inline(c))))); }
        else table.append(el("tr", {}, cells.map((c) => el("td", {}, inline(c)))));
        list = null;
        continue;
      }
      table = null;
      if (/^- /.test(line)) {
        if (!list) { list = el("ul"); out.append(list); }
        list.append(el("li", {}, inline(line.slice(2))));
        continue;
      }
      list = null;
      if (line.trim()) out.append(el("p", {}, inline(line)));
    }
    return out;
  }

  // ---------------------------------------------------------------- charts (plain SVG)
  function niceTicks(lo, hi, n) {
    const span = hi - lo || Math.abs(hi) || 1;
    const step0 = span / n;
    const mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => span / s <= n) || 10 * mag;
    const ticks = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
    return ticks;
  }
  function timeTicks(t0, t1) {
    const days = (t1 - t0) / 86400000;
    const stepMonths = days > 1500 ? 12 : days > 700 ? 6 : days > 300 ? 3 : days > 120 ? 2 : 1;
    const d = new Date(t0);
    let y = d.getUTCFullYear(), m = d.getUTCMonth() + 1;
    const out = [];
    for (let i = 0; i < 60; i++) {
      if (m > 11) { y += Math.floor(m / 12); m %= 12; }
      const t = Date.UTC(y, m, 1);
      if (t > t1) break;
      if (m % stepMonths === 0 || stepMonths === 1) out.push(t);
      m += 1;
    }
    return out;
  }
  function timeDomain(dates, asOf) {
    let t0 = Math.min(...dates), t1 = Math.max(...dates, asOf ? parseDate(asOf) : -Infinity);
    if (t1 - t0 < 60 * 86400000) { const mid = (t0 + t1) / 2; t0 = mid - 30 * 86400000; t1 = mid + 30 * 86400000; }
    const pad = (t1 - t0) * 0.06;
    return [t0 - pad, t1 + pad];
  }

  function chartFigure(spec, asOf, idBase) {
    spec = {...spec, refs: spec.refs || [], series: (spec.series || []).filter((s) => s.points && s.points.length)};
    const W = 900, H = 360, L = 78, R = 150, T = 30, B = 52;
    const points = spec.series.flatMap((s) => s.points);
    const values = points.map((p) => p.value).concat(spec.refs.map((r) => r.value));
    const log = spec.scale === "log" && values.every((v) => v > 0);
    let lo, hi;
    if (log) {
      lo = Math.floor(Math.log10(Math.min(...values)));
      hi = Math.ceil(Math.log10(Math.max(...values)));
      if (hi === lo) { hi += 1; lo -= 1; }
    } else {
      const vmin = Math.min(...values), vmax = Math.max(...values);
      lo = spec.yMin !== undefined && spec.yMin !== null ? Math.min(spec.yMin, vmin) : vmin - (vmax - vmin || Math.abs(vmax) || 1) * 0.15;
      hi = vmax + (vmax - lo || 1) * 0.12;
      if (spec.id === "deauville") { lo = 1; hi = 5.4; }
    }
    const [t0, t1] = timeDomain(points.map((p) => parseDate(p.date)), asOf);
    const x = (t) => L + (W - L - R) * (t - t0) / (t1 - t0);
    const y = (v) => {
      const f = log ? (Math.log10(v) - lo) / (hi - lo) : (v - lo) / (hi - lo);
      return T + (H - T - B) * (1 - f);
    };
    const titleId = `${idBase}-title`, descId = `${idBase}-desc`;
    const root = svg("svg", {class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": titleId, "aria-describedby": descId,
                             "data-chart": spec.id, focusable: "false"},
      svg("title", {id: titleId}, `${spec.title} (${spec.unit})`),
      svg("desc", {id: descId}, spec.description || ""));
    // zones first (under everything)
    for (const ref of spec.refs) {
      if (ref.kind === "response" && !log) {
        const top = y(ref.value), bottom = y(lo);
        if (bottom > top) root.append(svg("rect", {x: L, y: top, width: W - L - R, height: bottom - top, fill: "#e3f3e6"}));
      } else if (ref.kind === "progression") {
        const top = T, bottom = y(ref.value);
        if (bottom > top) root.append(svg("rect", {x: L, y: top, width: W - L - R, height: bottom - top, fill: "#fbe5e3"}));
      }
    }
    // grid and axes
    const yt = log ? Array.from({length: hi - lo + 1}, (_, i) => Math.pow(10, lo + i)) : niceTicks(lo, hi, 6);
    for (const v of yt) {
      root.append(svg("line", {class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v)}),
                  svg("text", {x: L - 8, y: y(v) + 5, "text-anchor": "end", "font-size": 15}, fmt(v)));
    }
    root.append(svg("line", {class: "axis", x1: L, x2: L, y1: T, y2: H - B}),
                svg("line", {class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B}),
                svg("text", {x: 14, y: (T + H - B) / 2, "font-size": 15, transform: `rotate(-90 14 ${(T + H - B) / 2})`, "text-anchor": "middle"}, spec.unit));
    for (const t of timeTicks(t0, t1)) {
      if (x(t) < L + 20 || x(t) > W - R - 20) continue;
      root.append(svg("line", {class: "grid", x1: x(t), x2: x(t), y1: H - B, y2: H - B + 6}),
                  svg("text", {x: x(t), y: H - B + 24, "text-anchor": "middle", "font-size": 15}, monthText(t)));
    }
    if (asOf) {
      const ta = parseDate(asOf);
      root.append(svg("line", {x1: x(ta), x2: x(ta), y1: T, y2: H - B, stroke: "#777", "stroke-dasharray": "2 3"}),
                  svg("text", {x: x(ta), y: T - 8, "text-anchor": "middle", "font-size": 14}, "today"));
    }
    // reference lines with short labels at the right
    const labelY = [];
    for (const ref of spec.refs) {
      const st = REF_STYLE[ref.kind] || REF_STYLE.limit;
      if (log && ref.value <= 0) continue;
      const yy = y(ref.value);
      root.append(svg("line", {x1: L, x2: W - R, y1: yy, y2: yy, stroke: st.stroke, "stroke-width": 2, "stroke-dasharray": st.dash}));
      let ly = yy + 5;
      while (labelY.some((u) => Math.abs(u - ly) < 17)) ly += 17;
      labelY.push(ly);
      root.append(svg("text", {x: W - R + 6, y: ly, "font-size": 14, fill: st.stroke, "font-weight": "bold"}, `${ref.short || st.short} ${fmt(ref.value)}`));
    }
    // series
    spec.series.forEach((s, si) => {
      const colour = SERIES_COLOUR[si % SERIES_COLOUR.length];
      const pts = s.points.map((p) => [x(parseDate(p.date)), y(log ? Math.max(p.value, Math.pow(10, lo)) : p.value), p]);
      if (pts.length > 1) root.append(svg("polyline", {points: pts.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(" "),
                                                      fill: "none", stroke: colour, "stroke-width": 3}));
      pts.forEach(([px, py, p], i) => {
        const label = `${dateText(p.date)}: ${s.label} ${fmt(p.value)} ${spec.unit}${p.category ? ", " + p.category : ""}`;
        const dot = svg("circle", {class: "pt", cx: px, cy: py, r: 8, fill: OUTCOME_COLOUR[p.outcome] || colour,
                                   stroke: "#fff", "stroke-width": 2, tabindex: 0, role: "img", "aria-label": label,
                                   "data-value": p.value, "data-date": p.date, "data-category": p.category || ""},
                        svg("title", {}, label));
        root.append(dot);
        if (p.category && si === 0) {
          const above = i % 2 === 0 ? -16 : 30;
          root.append(svg("text", {x: px, y: py + above, "text-anchor": "middle", "font-size": 14, "font-weight": "bold",
                                   fill: OUTCOME_COLOUR[p.outcome] || "#222", "aria-hidden": "true"}, p.category));
        }
      });
    });
    const legend = el("ul", {class: "legend"},
      spec.series.length > 1 ? spec.series.map((s, si) => el("li", {}, swatch(SERIES_COLOUR[si % SERIES_COLOUR.length], ""), s.label)) : [],
      spec.refs.map((ref) => { const st = REF_STYLE[ref.kind] || REF_STYLE.limit; return el("li", {}, swatch(st.stroke, st.dash), ref.label); }));
    const table = el("table", {class: "data"},
      el("caption", {class: "muted", text: `${spec.title}: values`}),
      el("thead", {}, el("tr", {}, el("th", {scope: "col", text: "Date"}), el("th", {scope: "col", text: "Measure"}),
                                   el("th", {scope: "col", text: `Value (${spec.unit})`}), el("th", {scope: "col", text: "Category"}))),
      el("tbody", {}, spec.series.flatMap((s) => s.points.map((p) => el("tr", {},
        el("td", {text: dateText(p.date)}), el("td", {text: s.label}), el("td", {class: "num", text: fmt(p.value)}), el("td", {text: p.category || ""}))))),
      spec.refs.length ? el("tbody", {}, spec.refs.map((r) => el("tr", {}, el("td", {text: "—"}), el("td", {text: r.label}),
        el("td", {class: "num", text: fmt(r.value)}), el("td", {text: ""})))) : null);
    return el("figure", {class: "chart-fig", "data-chart-id": spec.id},
      el("figcaption", {text: `${spec.title} (${spec.unit})`}),
      el("div", {class: "chart-wrap"}, root),
      legend,
      spec.note ? el("p", {class: "note", text: spec.note}) : null,
      el("details", {}, el("summary", {text: `Data table: ${spec.title}`}), table));
  }
  function swatch(colour, dash) {
    return svg("svg", {width: 28, height: 12, "aria-hidden": "true", focusable: "false"},
               svg("line", {x1: 1, x2: 27, y1: 6, y2: 6, stroke: colour, "stroke-width": 3, "stroke-dasharray": dash}));
  }

  // the course of the disease: every dated assessment on one time axis, remission episodes shaded
  function courseFigure(c, asOf, idBase) {
    const hist = c.history || [];
    const course = c.course || {};
    const W = 900, H = 170, L = 20, R = 20, Y = 100;
    const dates = hist.map((h) => parseDate(h.date));
    const titleId = `${idBase}-title`, descId = `${idBase}-desc`;
    const words = hist.map((h) => `${dateText(h.date)}: ${h.category}`).join("; ");
    const desc = `Assessments: ${words || "none dated"}.` + (course.status ? ` Course: ${course.status}.` : "");
    const root = svg("svg", {class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": titleId, "aria-describedby": descId,
                             "data-chart": "course", focusable: "false"},
      svg("title", {id: titleId}, `Assessments over time: ${c.criteria}`), svg("desc", {id: descId}, desc));
    if (dates.length) {
      const [t0, t1] = timeDomain(dates, asOf);
      const x = (t) => L + (W - L - R) * (t - t0) / (t1 - t0);
      for (const ep of course.episodes || []) {
        const a = x(parseDate(ep.start)), b = x(ep.end ? parseDate(ep.end) : parseDate(asOf));
        root.append(svg("rect", {x: a, y: Y - 22, width: Math.max(b - a, 3), height: 44, fill: "#e3f3e6", stroke: "#146c2e"}),
                    svg("text", {x: a + 4, y: Y + 38, "font-size": 13, fill: "#146c2e"}, `remission${ep.end ? "" : " (ongoing)"}`));
      }
      root.append(svg("line", {class: "axis", x1: L, x2: W - R, y1: Y, y2: Y}));
      for (const t of timeTicks(t0, t1)) {
        if (x(t) < L + 30 || x(t) > W - R - 30) continue;   // a label cut by the edge helps nobody
        root.append(svg("text", {x: x(t), y: H - 6, "text-anchor": "middle", "font-size": 14}, monthText(t)));
      }
      if (asOf) root.append(svg("line", {x1: x(parseDate(asOf)), x2: x(parseDate(asOf)), y1: Y - 30, y2: Y + 30, stroke: "#777", "stroke-dasharray": "2 3"}));
      const placed = [];
      hist.forEach((h) => {
        const px = x(parseDate(h.date));
        const label = `${dateText(h.date)}: ${h.category} (${meaning(h)})`;
        root.append(svg("circle", {class: "pt", cx: px, cy: Y, r: 10, fill: OUTCOME_COLOUR[h.outcome] || "#555", stroke: "#fff",
                                   "stroke-width": 2, tabindex: 0, role: "img", "aria-label": label, "data-category": h.category},
                        svg("title", {}, label)));
        let ly = Y - 30;
        while (placed.some(([qx, qy]) => qy === ly && Math.abs(qx - px) < 12 + 5 * (h.category.length + 4))) ly -= 20;
        placed.push([px, ly]);
        root.append(svg("text", {x: px, y: ly, "text-anchor": "middle", "font-size": 15, "font-weight": "bold",
                                 fill: OUTCOME_COLOUR[h.outcome] || "#222", "aria-hidden": "true"}, h.category));
      });
    }
    const marks = (h) => [h.date === course.remissionStart ? "remission first met" : null,
                          h.date === course.confirmedOn ? "remission confirmed" : null,
                          h.date === course.lossDate ? "remission lost" : null].filter(Boolean).join(", ");
    const table = el("table", {class: "history"},
      el("caption", {class: "muted", text: `${c.criteria}: category at each assessment`}),
      el("thead", {}, el("tr", {}, el("th", {scope: "col", text: "Date"}), el("th", {scope: "col", text: "Category"}),
                                   el("th", {scope: "col", text: "Meaning"}), el("th", {scope: "col", text: "Course"}))),
      el("tbody", {}, hist.map((h) => el("tr", {"data-date": h.date},
        el("td", {text: dateText(h.date)}), el("td", {}, el("span", {class: `badge o-${h.outcome}`, text: h.category})),
        el("td", {text: meaning(h)}), el("td", {text: marks(h)})))));
    return el("figure", {class: "course-fig", "data-chart-id": "course"},
      el("figcaption", {class: "note", text: "Each dot is a dated assessment with its category; the green band is remission."}),
      el("div", {class: "chart-wrap"}, root), table);
  }

  // ---------------------------------------------------------------- surveillance calendar
  function surveillanceBlock(sv, asOf) {
    const items = sv.items || [];
    const scheduled = items.filter((i) => i.status !== "not_recommended");
    const avoid = items.filter((i) => i.status === "not_recommended");
    const STATUS = {overdue: "overdue", due: "due now", upcoming: "upcoming", as_indicated: "as indicated",
                    "completed-phase": "phase completed", not_recommended: "not recommended"};
    const order = {overdue: 0, due: 1, upcoming: 2, as_indicated: 3, "completed-phase": 4};
    scheduled.sort((a, b) => (order[a.status] ?? 9) - (order[b.status] ?? 9) || String(a.dueDate || "9").localeCompare(String(b.dueDate || "9")));
    const now = parseDate(asOf);
    const start = new Date(now);
    const cells = [];
    const overdue = scheduled.filter((i) => i.status === "overdue");
    const dueNow = scheduled.filter((i) => i.status === "due");
    cells.push(el("li", {class: "overdue"}, el("span", {class: "month", text: "Overdue"}),
      overdue.length ? el("ul", {}, overdue.map((i) => el("li", {text: `${i.label} (due ${dateText(i.dueDate)})`}))) : el("span", {class: "muted", text: "nothing"})));
    cells.push(el("li", {class: "now"}, el("span", {class: "month", text: "Due now"}),
      dueNow.length ? el("ul", {}, dueNow.map((i) => el("li", {text: i.label}))) : el("span", {class: "muted", text: "nothing"})));
    for (let k = 0; k < 12; k++) {
      const y = start.getUTCFullYear() + Math.floor((start.getUTCMonth() + k) / 12);
      const m = (start.getUTCMonth() + k) % 12;
      const inMonth = scheduled.filter((i) => i.status === "upcoming" && i.dueDate &&
        new Date(parseDate(i.dueDate)).getUTCFullYear() === y && new Date(parseDate(i.dueDate)).getUTCMonth() === m);
      cells.push(el("li", {}, el("span", {class: "month", text: `${MONTHS[m]} ${y}`}),
        inMonth.length ? el("ul", {}, inMonth.map((i) => el("li", {text: i.label}))) : null));
    }
    return el("div", {class: "surveillance", "data-surveillance": sv.cancerType},
      el("p", {}, `${sv.label}: ${sv.monthsSinceAnchor} months since the start of complete remission (${dateText(sv.anchor)}).`),
      el("ol", {class: "calendar", "aria-label": "Follow-up calendar, next 12 months"}, cells),
      el("table", {class: "schedule"},
        el("caption", {class: "muted", text: "Follow-up schedule"}),
        el("thead", {}, el("tr", {}, ["Item", "Interval", "Last done", "Next due", "Status"].map((h) => el("th", {scope: "col", text: h})))),
        el("tbody", {}, scheduled.map((i) => el("tr", {"data-item": i.id, "data-status": i.status},
          el("td", {text: i.label}), el("td", {text: i.interval || ""}), el("td", {text: i.lastDone ? dateText(i.lastDone) : "not in record"}),
          el("td", {text: i.dueDate ? dateText(i.dueDate) : "—"}),
          el("td", {}, el("span", {class: `st st-${i.status}`, text: STATUS[i.status] || i.status})))))),
      avoid.length ? el("div", {}, el("h4", {text: "Not recommended routinely"}),
        el("ul", {}, avoid.map((i) => el("li", {"data-item": i.id, "data-status": i.status}, i.label, el("span", {class: "muted", text: ` (${i.citation})`}))))) : null,
      el("p", {class: "note", text: `Source: ${sv.source}`}));
  }

  // ---------------------------------------------------------------- page
  function render(data, appContext) {
    const p = data.patient || {};
    $("patient").replaceChildren(el("strong", {text: p.name || p.id}),
      el("span", {text: ` · born ${p.birthDate ? dateText(p.birthDate) : "—"}${p.gender ? " · " + p.gender : ""} · as of ${dateText(data.asOf)}`}));
    document.title = `Response timeline — ${p.name || p.id}`;
    const content = $("content");
    content.replaceChildren();
    const cancers = data.cancers || [];
    if (data.unavailable) {
      content.append(el("div", {class: "error", role: "note"}, el("h2", {text: "Some data could not be read"}),
        el("ul", {}, Object.entries(data.unavailable).map(([k, v]) => el("li", {text: `${k}: ${v}`})))));
    }
    if (!cancers.length) {
      content.append(el("p", {text: "No cancer with response criteria was found in this record."}));
    }
    const toc = $("toc");
    toc.replaceChildren(el("ul", {}, cancers.map((c) => el("li", {}, el("a", {href: `#${c.id}-h`},
      el("span", {class: `badge o-${c.outcome || "not_evaluable"}`, text: c.category}),
      `${cancerLabel(c)} — ${c.criteria}`)))));
    toc.hidden = !cancers.length;
    let focusTarget = null;
    cancers.forEach((c) => {
      const sec = section(c, data.asOf);
      content.append(sec);
      if (appContext && ((appContext.condition && c.cancer && c.cancer.condition === appContext.condition) ||
                         (!appContext.condition && appContext.criteria === c.criteria))) {
        if (!focusTarget) { focusTarget = sec; sec.classList.add("from-card"); }
      }
    });
    toc.querySelectorAll("a").forEach((a) => a.addEventListener("click", (ev) => {
      const h = document.getElementById(a.getAttribute("href").slice(1));
      if (h) { ev.preventDefault(); h.focus(); h.scrollIntoView({block: "start"}); }
    }));
    setStatus(`${cancers.length} ${cancers.length === 1 ? "cancer" : "cancers"} assessed — the same categories as the remission-cds cards.`);
    document.body.dataset.state = "ready";
    if (focusTarget) { const h = focusTarget.querySelector("h2"); h.focus(); h.scrollIntoView({block: "start"}); }
  }

  function cancerLabel(c) {
    const t = (c.cancer && c.cancer.label) || c.conditionText || "Cancer";
    return t.charAt(0).toUpperCase() + t.slice(1);
  }
  function meaning(h) {
    return /baseline|pretreatment/i.test(h.category) ? "baseline (reference)" : (OUTCOME_WORDS[h.outcome] || h.outcome);
  }

  function section(c, asOf) {
    const outcome = c.outcome || "not_evaluable";
    const course = c.course || {};
    const sec = el("section", {class: `cancer alert-${c.indicator}`, id: c.id, "aria-labelledby": `${c.id}-h`,
                               "data-criteria": c.criteria, "data-category": c.category, "data-indicator": c.indicator,
                               "data-confirmed": String(c.confirmed === true)});
    const title = `${cancerLabel(c)} — ${c.criteria}`;
    sec.append(el("h2", {id: `${c.id}-h`, tabindex: "-1", text: title}));
    if (c.conditionText) sec.append(el("p", {class: "muted", text: c.conditionText}));
    const responded = outcome === "complete" || outcome === "partial";   // as the card: confirmation of a response
    const conf = c.assessed === false || !responded ? null :
      (c.confirmed ? el("span", {class: "flag ok", text: "✓ confirmed"}) :
        el("span", {class: "flag pending", text: `not yet confirmed${course.confirmOnOrAfter ? " — confirm on or after " + dateText(course.confirmOnOrAfter) : ""}`}));
    sec.append(el("div", {class: "headline"},
      el("span", {class: `badge big o-${outcome}`, "data-role": "category", text: c.category}),
      el("span", {text: c.label || OUTCOME_WORDS[outcome] || ""}), conf,
      c.assessmentDate ? el("span", {class: "muted", text: dateText(c.assessmentDate)}) : null));
    sec.append(el("p", {class: "summary", text: c.summary}));
    if (c.assessed === false) {
      sec.append(el("h3", {text: "What is missing"}), el("ul", {}, (c.missing || []).map((m) => el("li", {text: m}))));
      sec.append(el("details", {}, el("summary", {text: "As on the card"}), markdown(c.detail)));
      return sec;
    }
    const rows = [];
    if (course.status) rows.push(["Course", course.status]);
    if (course.remissionStart) rows.push(["Remission first met", dateText(course.remissionStart)]);
    if (course.remissionStart) rows.push(["Remission duration", durationText(course.durationDays) + (course.lossDate ? " (until loss)" : " (to today)")]);
    if (course.confirmedOn) rows.push(["Confirmed", `${dateText(course.confirmedOn)}${course.confirmationBasis ? " (" + course.confirmationBasis + ")" : ""}`]);
    if (course.bestResponse) rows.push(["Best response", `${course.bestResponse}${course.bestDate ? " (" + dateText(course.bestDate) + ")" : ""}`]);
    if (course.lossDate) rows.push(["Remission lost", `${dateText(course.lossDate)}: ${course.lossCategory || ""}`]);
    if (course.cureNote) rows.push(["Note", course.cureNote]);
    if (rows.length) {
      sec.append(el("dl", {class: "course"}, rows.flatMap(([k, v]) => [el("dt", {text: k}),
        el("dd", {class: k === "Remission lost" ? "flag lost" : null, text: v})])));
    }
    sec.append(el("h3", {text: "Assessments over time"}), courseFigure(c, asOf, `${c.id}-course`));
    const charts = c.charts || [];
    if (charts.length) {
      const burden = charts.filter((ch) => ch.kind === "burden");
      const markers = charts.filter((ch) => ch.kind !== "burden");
      if (burden.length) sec.append(el("h3", {text: "Tumour burden"}), ...burden.map((ch) => chartFigure(ch, asOf, `${c.id}-${ch.id}`)));
      if (markers.length) sec.append(el("h3", {text: "Markers"}), ...markers.map((ch) => chartFigure(ch, asOf, `${c.id}-${ch.id}`)));
    }
    if (c.surveillance) sec.append(el("h3", {text: "Follow-up calendar"}), surveillanceBlock(c.surveillance, asOf));
    sec.append(el("details", {}, el("summary", {text: "Evidence and sources (as on the card)"}), markdown(c.detail),
      c.source && c.source.url ? el("p", {}, el("a", {href: c.source.url, rel: "noopener noreferrer", target: "_blank", text: c.source.label})) : null));
    return sec;
  }

  // ---------------------------------------------------------------- start
  async function main() {
    const r = await fetchJSON("/smart/api/config", {headers: {Accept: "application/json"}});
    if (!r.ok) return fail("The app could not start", `the service answered ${r.status || r.error}`);
    config = r.body;
    const q = new URLSearchParams(location.search);
    if (q.get("error")) {
      history.replaceState(null, "", config.redirectPath);
      return fail("The EHR refused the sign-in", `${q.get("error")}${q.get("error_description") ? ": " + q.get("error_description") : ""}`);
    }
    if (q.get("code") && q.get("state")) return completeAuthorization(q);
    const iss = (q.get("iss") || "").replace(/\/+$/, "");
    if (iss && q.get("launch")) return ehrLaunch(iss, q.get("launch"));
    if (iss) return standalone(iss, q.get("patient"));
    return help();
  }
  window.addEventListener("DOMContentLoaded", () => {
    main().catch((e) => fail("The app stopped", e && e.message ? e.message : String(e)));
  });
})();
