// Renders /api/openapi.json as a browsable list of operations and schemas.
// Everything from the document is inserted as text (never as HTML).
"use strict";

const METHODS = ["get", "post", "put", "patch", "delete"];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function refName(ref) {
  return ref.split("/").pop();
}

// A short rendering of a schema: a link for a $ref, else its JSON.
function schemaView(schema) {
  if (!schema) return el("span", {}, "—");
  if (schema.$ref) {
    return el("a", { class: "ref", href: "#schema-" + refName(schema.$ref) }, refName(schema.$ref));
  }
  return el("pre", {}, JSON.stringify(schema, null, 2));
}

function resolve(doc, maybeRef) {
  if (maybeRef && maybeRef.$ref) {
    const [, , kind, name] = maybeRef.$ref.split("/");
    return (doc.components[kind] || {})[name] || {};
  }
  return maybeRef || {};
}

function parametersTable(params) {
  const rows = params.map((p) =>
    el("tr", {},
      el("td", {}, el("code", {}, p.name)),
      el("td", {}, p.in),
      el("td", {}, p.required ? "required" : ""),
      el("td", {}, p.description || "")));
  return el("table", {}, el("tr", {}, el("th", {}, "Parameter"), el("th", {}, "In"), el("th", {}, ""), el("th", {}, "Description")), ...rows);
}

function contentView(content) {
  const parts = [];
  for (const [type, media] of Object.entries(content || {})) {
    parts.push(el("div", {}, el("code", {}, type), " ", schemaView(media.schema)));
  }
  return parts;
}

function operationView(doc, path, method, op, security) {
  const isPublic = Array.isArray(op.security) && op.security.some((s) => Object.keys(s).length === 0);
  const body = el("div", { class: "body" });
  if (op.description) body.append(el("p", {}, op.description));
  if (op.parameters && op.parameters.length) body.append(parametersTable(op.parameters));
  if (op.requestBody) {
    body.append(el("h4", {}, "Request body"), ...contentView(op.requestBody.content));
  }
  const responses = Object.entries(op.responses || {}).map(([status, r]) => {
    const response = resolve(doc, r);
    return el("tr", {},
      el("td", {}, el("code", {}, status)),
      el("td", {}, response.description || ""),
      el("td", {}, ...contentView(response.content)));
  });
  body.append(el("h4", {}, "Responses"), el("table", {}, ...responses));
  const summary = el("summary", {},
    el("span", { class: "method " + method }, method.toUpperCase()),
    el("span", { class: "path" }, path),
    el("span", { class: "summary" }, op.summary || ""),
    isPublic || !security ? el("span", { class: "public" }, "public") : null);
  const details = el("details", { class: "op" }, summary, body);
  details.dataset.search = [path, method, op.summary || "", (op.tags || []).join(" ")].join(" ").toLowerCase();
  return details;
}

function render(doc) {
  document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
  document.title = doc.info.title;
  const summary = document.getElementById("summary");
  summary.textContent = doc.info.description || "";
  summary.append(" ", el("a", { href: "/api/openapi.json" }, "OpenAPI " + doc.openapi + " document"));

  const byTag = new Map((doc.tags || []).map((t) => [t.name, { tag: t, ops: [] }]));
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const tag = (op.tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, { tag: { name: tag }, ops: [] });
      byTag.get(tag).ops.push(operationView(doc, path, method, op, doc.security));
    }
  }
  const main = document.getElementById("operations");
  for (const { tag, ops } of byTag.values()) {
    if (!ops.length) continue;
    const section = el("section", { class: "tag" }, el("h2", {}, tag.name), tag.description ? el("p", {}, tag.description) : null, ...ops);
    main.append(section);
  }

  const schemas = document.getElementById("schemas");
  for (const [name, schema] of Object.entries((doc.components || {}).schemas || {})) {
    schemas.append(el("h3", { id: "schema-" + name }, name), el("pre", {}, JSON.stringify(schema, null, 2)));
  }
  document.getElementById("schemas-section").hidden = false;

  document.getElementById("search").addEventListener("input", (event) => {
    const needle = event.target.value.trim().toLowerCase();
    for (const section of main.querySelectorAll("section.tag")) {
      let shown = 0;
      for (const op of section.querySelectorAll("details.op")) {
        const match = !needle || op.dataset.search.includes(needle);
        op.hidden = !match;
        if (match) shown += 1;
      }
      section.hidden = shown === 0;
    }
  });
}

fetch("/api/openapi.json", { credentials: "same-origin" })
  .then((r) => {
    if (!r.ok) throw new Error("HTTP " + r.status);
    return r.json();
  })
  .then(render)
  .catch((e) => {
    const summary = document.getElementById("summary");
    summary.textContent = "Could not load /api/openapi.json: " + e.message;
    summary.className = "error";
  });
