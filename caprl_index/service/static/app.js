// caprl-index web page: search, documents, ingest jobs over the /v1 API.
// Document text and names only ever reach the page through textContent (never innerHTML): a PDF cannot
// inject markup. With an API key, images are fetched with the key and shown from blob: URLs (an <img>
// cannot send a header).
"use strict";

const state = { key: sessionStorage.getItem("caprl-key") || "", files: new Map(), jobsTimer: null };
const $ = (selector, root = document) => root.querySelector(selector);
const TEXT_CHARS = 600;

function authHeaders(extra = {}) {
  return state.key ? { ...extra, Authorization: `Bearer ${state.key}` } : extra;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: authHeaders(options.headers) });
  if (response.status === 401) {
    $("#key-form").hidden = false;
    $("#api-key").focus();
    throw new Error("this server needs its API key (enter it above)");
  }
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function setImage(img, url) {
  img.hidden = false;
  if (!state.key) {
    img.src = url;
    return;
  }
  fetch(url, { headers: authHeaders() })
    .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(r.statusText))))
    .then((blob) => { img.src = URL.createObjectURL(blob); })
    .catch(() => { img.hidden = true; });
}

// Payload URIs are relative to the image root ("crops/ab/<sha>.png", "pages/<file sha>/<n>.webp") or URLs.
function cropUrl(uri) {
  if (!uri) return null;
  if (/^https?:\/\//.test(uri)) return uri;
  const m = uri.match(/([0-9a-f]{64})\.(png|jpg|webp)$/);
  return m ? `/v1/images/${m[1]}` : null;
}

function pageUrl(uri, thumb) {
  if (!uri) return null;
  if (/^https?:\/\//.test(uri)) return uri;
  const m = uri.match(/pages\/([0-9a-f]{64})\/(\d+)\.webp$/);
  return m ? `/v1/pages/${m[1]}/${m[2]}${thumb ? "?thumb=true" : ""}` : null;
}

function pageImageUri(sha, page) {
  return `pages/${sha}/${page}.webp`;
}

// A box in PDF points drawn over a page frame, in percent of the page so it follows the image's size.
function placeBox(box, bbox, width, height) {
  if (!bbox || !width || !height) return;
  const [x0, y0, x1, y1] = bbox;
  box.style.left = `${(100 * x0) / width}%`;
  box.style.top = `${(100 * y0) / height}%`;
  box.style.width = `${(100 * (x1 - x0)) / width}%`;
  box.style.height = `${(100 * (y1 - y0)) / height}%`;
  box.hidden = false;
}

function addMeta(dl, label, value) {
  if (value === null || value === undefined || value === "") return;
  const dt = document.createElement("dt");
  const dd = document.createElement("dd");
  dt.textContent = label;
  dd.textContent = String(value);
  dl.append(dt, dd);
}

function setText(p, text) {
  const flat = text.replace(/\s+/g, " ").trim();
  p.textContent = flat.length > TEXT_CHARS ? `${flat.slice(0, TEXT_CHARS)}…` : flat;
  if (flat.length <= TEXT_CHARS) return;
  const more = document.createElement("button");
  more.type = "button";
  more.className = "more";
  more.textContent = "Show all";
  more.setAttribute("aria-expanded", "false");
  more.addEventListener("click", () => {
    p.textContent = flat;
    more.remove();
  });
  p.after(more);
}

function card(hit, rank) {
  const li = $("#card-template").content.firstElementChild.cloneNode(true);
  li.dataset.id = hit.id;
  li.dataset.kind = hit.kind;
  const frame = $(".page-frame", li);
  if (hit.page_width && hit.page_height) frame.style.aspectRatio = `${hit.page_width} / ${hit.page_height}`;
  const page = pageUrl(hit.page_image_uri, true);
  const pageImg = $(".page-img", li);
  if (page) {
    pageImg.alt = `page ${hit.page} of ${hit.file_name}`;
    setImage(pageImg, page);
  } else {
    frame.classList.add("no-image");
  }
  placeBox($(".box", li), hit.bbox, hit.page_width, hit.page_height);
  $(".page-label", li).textContent = page ? `page ${hit.page}` : `page ${hit.page} (no render kept)`;
  const crop = cropUrl(hit.image_uri);
  if (crop) {
    const img = $(".crop-img", li);
    img.alt = `${hit.figure_type || hit.kind} on page ${hit.page} of ${hit.file_name}`;
    $(".crop-view", li).hidden = false;
    setImage(img, crop);
  }
  const link = $(".file-link", li);
  link.textContent = `${rank}. ${hit.file_name}`;
  link.title = hit.file_path;
  link.addEventListener("click", () => openDocument(hit.file_path));
  const meta = $(".meta", li);
  addMeta(meta, "page", hit.page);
  addMeta(meta, "kind", hit.kind);
  addMeta(meta, "figure type", hit.figure_type);
  addMeta(meta, "caption", hit.caption_source && [hit.caption_source, hit.caption_model].filter(Boolean).join(" · "));
  addMeta(meta, "score", hit.score.toFixed(3));
  setText($(".text", li), hit.text);
  return li;
}

async function search(event) {
  event.preventDefault();
  const form = event.target;
  const params = new URLSearchParams({ q: form.q.value, k: form.k.value });
  for (const name of ["kind", "file", "pages"]) if (form[name].value.trim()) params.set(name, form[name].value.trim());
  if (form.group_by.checked) params.set("group_by", "page");
  const status = $("#search-status");
  const list = $("#results");
  status.textContent = "Searching…";
  try {
    const hits = await api(`/v1/search?${params}`);
    list.replaceChildren(...hits.map((hit, i) => card(hit, i + 1)));
    status.textContent = hits.length ? `${hits.length} result(s)` : "No results.";
  } catch (error) {
    list.replaceChildren();
    status.textContent = `Error: ${error.message}`;
  }
}

function show(view) {
  for (const name of ["search", "files", "doc", "jobs"]) $(`#view-${name}`).hidden = name !== view;
  const current = view === "doc" ? "files" : view; // a document is opened from Documents
  for (const button of document.querySelectorAll("nav button")) {
    if (button.dataset.view === current) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  if (view === "files") loadFiles();
  if (view === "jobs") loadJobs();
}

function cell(row, text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text;
  row.append(td);
  return td;
}

async function loadFiles() {
  const status = $("#files-status");
  try {
    const files = await api("/v1/files");
    state.files = new Map(files.map((f) => [f.file_path, f]));
    const rows = files.map((f) => {
      const row = document.createElement("tr");
      const name = document.createElement("td");
      const open = document.createElement("button");
      open.type = "button";
      open.className = "file-link";
      open.textContent = f.file_name;
      open.title = f.file_path;
      open.disabled = !f.complete;
      open.addEventListener("click", () => openDocument(f.file_path));
      name.append(open);
      row.append(name);
      cell(row, f.page_count);
      cell(row, f.figures);
      cell(row, f.points);
      cell(row, f.captions_pending);
      cell(row, f.error || f.last_error || (f.missing_on_disk ? "missing on disk" : "indexed"), f.failed ? "bad" : "");
      return row;
    });
    $("#files-table tbody").replaceChildren(...rows);
    status.textContent = `${files.length} file(s)`;
  } catch (error) {
    status.textContent = `Error: ${error.message}`;
  }
}

async function openDocument(path) {
  if (!state.files.has(path)) await loadFiles();
  const file = state.files.get(path);
  show("doc");
  const status = $("#doc-status");
  $("#doc-title").textContent = file ? file.file_name : "Document";
  $("#doc-title").focus();
  if (!file) {
    status.textContent = "This file is no longer indexed.";
    return;
  }
  status.textContent = "Loading…";
  try {
    const doc = await api(`/v1/documents/${file.file_sha256}`);
    $("#doc-pages").replaceChildren(...doc.pages.map((p) => pageCard(file, p, doc.figures)));
    status.textContent = `${doc.pages.length} page(s), ${doc.figures.length} figure(s) outlined`;
  } catch (error) {
    status.textContent = `Error: ${error.message}`;
  }
}

function pageCard(file, page, figures) {
  const li = document.createElement("li");
  li.className = "doc-page";
  const frame = document.createElement("div");
  frame.className = "page-frame";
  if (page.page_width && page.page_height) frame.style.aspectRatio = `${page.page_width} / ${page.page_height}`;
  if (page.image) {
    const img = document.createElement("img");
    img.loading = "lazy";
    img.alt = `page ${page.page}`;
    setImage(img, pageUrl(pageImageUri(file.file_sha256, page.page), true));
    frame.append(img);
  } else {
    frame.classList.add("no-image");
  }
  const here = figures.filter((f) => f.page === page.page);
  for (const figure of here) {
    const box = document.createElement("div");
    box.className = "box";
    box.title = `${figure.figure_type || figure.kind} (${figure.caption_source || "no caption"})`;
    placeBox(box, figure.bbox, page.page_width, page.page_height);
    frame.append(box);
  }
  const label = document.createElement("p");
  label.className = "page-label";
  const kinds = here.map((f) => f.figure_type || f.kind).join(", ");
  label.textContent = `page ${page.page}${here.length ? ` · ${kinds}` : ""}`;
  li.append(frame, label);
  return li;
}

function progressRow(container, label, done, total) {
  const wrap = document.createElement("div");
  wrap.className = "progress";
  const id = `p-${Math.random().toString(36).slice(2)}`;
  const text = document.createElement("label");
  text.htmlFor = id;
  text.textContent = `${label}: ${done} / ${total}`;
  const bar = document.createElement("progress");
  bar.id = id;
  bar.max = Math.max(total, 1);
  bar.value = Math.min(done, bar.max);
  wrap.append(text, bar);
  container.append(wrap);
}

function jobItem(job) {
  const li = document.createElement("li");
  li.className = `job ${job.state}`;
  li.dataset.id = job.id;
  const head = document.createElement("h3");
  head.textContent = `${job.kind} ${job.id.slice(0, 8)} · ${job.state}`;
  const paths = document.createElement("p");
  paths.className = "paths";
  paths.textContent = job.paths.join(", ");
  li.append(head, paths);
  const p = job.progress;
  progressRow(li, "files", p.files_done, p.files_total);
  progressRow(li, "pages", p.pages_done, p.pages_total);
  progressRow(li, "captions", p.captions_done, p.captions_total);
  const lines = [...job.failures.map((f) => `FAILED ${f.path}: ${f.reason}`), ...job.warnings];
  if (job.error) lines.unshift(`Error: ${job.error}`);
  if (job.summary) lines.push(...job.summary.lines, ...(job.summary.note ? [job.summary.note] : []));
  if (job.result) lines.push(`deleted: ${job.result.deleted.join(", ") || "nothing"}`);
  if (lines.length) {
    const pre = document.createElement("pre");
    pre.textContent = lines.join("\n");
    li.append(pre);
  }
  return li;
}

async function loadJobs() {
  clearTimeout(state.jobsTimer);
  try {
    const jobs = await api("/v1/jobs");
    const none = document.createElement("li");
    none.textContent = "No jobs yet.";
    $("#jobs").replaceChildren(...(jobs.length ? jobs.map(jobItem) : [none]));
    const active = jobs.some((j) => j.state === "queued" || j.state === "running");
    if (active) state.jobsTimer = setTimeout(loadJobs, 1000);
    else loadSummary();
  } catch (error) {
    $("#jobs-status").textContent = `Error: ${error.message}`;
  }
}

async function startIngest(event) {
  event.preventDefault();
  const paths = $("#paths").value.split("\n").map((p) => p.trim()).filter(Boolean);
  const body = {
    paths,
    force: $("#force").checked,
    prune: $("#prune").checked,
    no_figures: $("#no-figures").checked,
    captioner: $("#captioner").value || null,
  };
  try {
    const job = await api("/v1/ingest", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    $("#jobs-status").textContent = `Started job ${job.id.slice(0, 8)}.`;
    loadJobs();
  } catch (error) {
    $("#jobs-status").textContent = `Error: ${error.message}`;
  }
}

async function loadSummary() {
  try {
    const s = await api("/v1/status");
    $("#summary").textContent = `${s.files} files · ${s.pages} pages · ${s.figures} figures · ${s.points} points`;
  } catch (error) {
    $("#summary").textContent = error.message;
  }
}

function init() {
  for (const button of document.querySelectorAll("nav button")) {
    button.addEventListener("click", () => show(button.dataset.view));
  }
  $("#search-form").addEventListener("submit", search);
  $("#ingest-form").addEventListener("submit", startIngest);
  $("#doc-back").addEventListener("click", () => show("files"));
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.key = $("#api-key").value;
    sessionStorage.setItem("caprl-key", state.key);
    $("#key-form").hidden = true;
    loadSummary();
  });
  $("#doc-title").tabIndex = -1;
  loadSummary();
}

document.addEventListener("DOMContentLoaded", init);
