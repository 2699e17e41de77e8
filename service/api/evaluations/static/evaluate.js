// The evaluator page: lease a task, show both candidates, open helper reports, submit a comparison.
// Every text from the service is set with textContent, never as HTML. The page records which reports
// were opened (shown to the evaluator) and sends their ids with the comparison.
"use strict";

const KEY = "recursum.evaluate.key";
const REPORT_POLL_MS = 500;
const REPORT_WAIT_MS = 120000;
const $ = (id) => document.getElementById(id);
let state = { task: null, choice: null, opened: new Set(), flagged: new Set(), busy: false };

function el(tag, options = {}, ...children) {
  const node = document.createElement(tag);
  if (options.className) node.className = options.className;
  if (options.text !== undefined) node.textContent = options.text;
  if (options.title) node.title = options.title;
  for (const child of children) node.append(child);
  return node;
}

function setStatus(message, error = false) {
  $("status").textContent = message;
  $("status").classList.toggle("error", error);
}

// The key: `#key=` once (then dropped from the address), else the login field; kept for this tab only.
// A fragment never reaches the server, so no access log or proxy records the key (a query would).
function takeKeyFromAddress() {
  const url = new URL(window.location.href);
  const fragment = new URLSearchParams(url.hash.slice(1));
  const key = fragment.get("key");
  if (key) {
    sessionStorage.setItem(KEY, key);
    fragment.delete("key");
    const rest = fragment.toString();
    history.replaceState(null, "", url.pathname + url.search + (rest ? "#" + rest : ""));
  }
}

function askForKey(message) {
  $("login").hidden = false;
  $("forget").hidden = true;
  $("task").hidden = true;
  $("next").hidden = true;
  setStatus(message, Boolean(message));
  $("key").focus();
}

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + sessionStorage.getItem(KEY), Accept: "application/json" };
  const options = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = (data && (data.detail || data.title)) || response.statusText;
    const error = new Error(`${response.status} ${(data && data.title) || ""}: ${detail}`);
    error.status = response.status;
    throw error;
  }
  return data;
}

// Filters in the page's own address (height, role, kind) pass through to the task queue.
function taskQuery() {
  const page = new URLSearchParams(window.location.search);
  const query = new URLSearchParams();
  for (const name of ["height", "role", "kind"]) if (page.get(name)) query.set(name, page.get(name));
  return query.toString() ? "?" + query : "";
}

// The evaluator's own record: judged, agreement with others on shared pairs, known-answer checks, pace.
function percent(share) {
  return share === null ? "–" : Math.round(share * 100) + "%";
}

async function showFigures() {
  try {
    const mine = await api("GET", "/v1/evaluations/stats/me");
    const pace = mine.median_seconds === null ? "–" : Math.round(mine.median_seconds) + " s";
    $("figures").textContent = `Your record: ${mine.judged} judged · agreement with others ` +
      `${percent(mine.majority_agreement)} (${mine.overlapped} shared) · checks passed ` +
      `${percent(mine.gold_accuracy)} of ${mine.gold_answered} · median ${pace} per task · ` +
      `reports opened on ${mine.judged_with_reports}`;
    $("figures").hidden = false;
  } catch (error) {
    $("figures").hidden = true; // the figures are a courtesy: the task flow goes on without them
  }
}

async function loadTask() {
  $("next").hidden = true;
  showFigures();
  setStatus("Looking for a task…");
  try {
    const task = await api("GET", "/v1/evaluations/tasks" + taskQuery());
    if (task === null) {
      $("task").hidden = true;
      $("next").hidden = false;
      setStatus("No task is waiting for you right now.");
      return;
    }
    render(task);
  } catch (error) {
    if (error.status === 401 || error.status === 403) askForKey(error.message);
    else {
      setStatus(error.message, true);
      $("next").hidden = false;
    }
  }
}

function render(task) {
  state = { task, choice: null, opened: new Set(), flagged: new Set(), busy: false };
  $("login").hidden = true;
  $("forget").hidden = false;
  const until = new Date(task.leased_until * 1000).toLocaleTimeString();
  const what = task.kind === "critique" ? "two critiques" : "two summaries";
  $("meta").textContent = `“${task.title || "untitled"}”: ${what} of a ${task.role} node at height ` +
    `${task.height} (node ${task.node_id}). Yours until ${until}.`;
  const context = $("context-body");
  context.replaceChildren();
  if (task.source !== null && task.source !== undefined) {
    $("context-title").textContent = "Source text of this chunk";
    context.append(task.source);
  } else {
    $("context-title").textContent = `The ${task.children.length} summaries this node merges`;
    context.append(el("ol", {}, ...task.children.map((child) => el("li", { text: child.summary }))));
  }
  $("critiqued-line").hidden = !task.summary;
  $("critiqued").textContent = task.summary || "";
  task.candidates.forEach((candidate, side) => renderSide(candidate, side));
  const shared = $("task-reports");
  shared.replaceChildren(...task.reports.map((link) => reportButton(link, link.label)));
  $("report").hidden = true;
  for (const button of document.querySelectorAll(".choices button")) button.classList.remove("selected");
  for (const side of document.querySelectorAll(".side")) side.classList.remove("chosen");
  $("confidence").value = "0.7";
  $("confidence-value").textContent = "0.70";
  $("rationale").value = "";
  $("submit").disabled = true;
  updateOpened();
  $("task").hidden = false;
  setStatus("Choose A, B or tie (keys a, b, t), then submit (Enter).");
}

function renderSide(candidate, side) {
  const article = $(`side-${side}`);
  const list = article.querySelector(".text");
  const lines = candidate.sentences.length
    ? candidate.sentences.map((sentence) => ({
      text: sentence.text,
      unsupported: sentence.unsupported,
      title: `support ${sentence.support.toFixed(2)}, down to the source ${sentence.source_support.toFixed(2)}`,
    }))
    : (candidate.items.length ? candidate.items : [candidate.text]).map((text) => ({ text }));
  list.replaceChildren(...lines.map((line, item) => {
    const li = el("li", { text: line.text, title: line.title, className: line.unsupported ? "unsupported" : "" });
    li.addEventListener("click", () => toggleFlag(li, side, item));
    return li;
  }));
  article.querySelector(".reports").replaceChildren(
    ...candidate.reports.map((link) => reportButton(link, `${link.label} of ${side ? "B" : "A"}`)));
}

function toggleFlag(li, side, item) {
  const key = `${side}:${item}`;
  if (state.flagged.has(key)) state.flagged.delete(key);
  else state.flagged.add(key);
  li.classList.toggle("flagged", state.flagged.has(key));
}

function reportButton(link, label) {
  const button = el("button", { text: label });
  button.type = "button";
  button.className = "report-link";
  button.addEventListener("click", () => openReport(link, label, button));
  return button;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function openReport(link, label, button) {
  const task = state.task;
  $("report").hidden = false;
  $("report-title").textContent = label;
  $("report-body").replaceChildren(el("p", { text: "Opening the report…" }));
  try {
    let report = await api("POST", link.url, link.request);
    const deadline = Date.now() + REPORT_WAIT_MS;
    while (report.status === "pending" && Date.now() < deadline) {
      $("report-body").replaceChildren(el("p", { text: "The helper is writing this report…" }));
      await sleep(REPORT_POLL_MS);
      report = await api("GET", `${link.url}/${encodeURIComponent(report.id)}`);
    }
    if (state.task !== task) return; // the evaluator moved on meanwhile
    if (report.status !== "done") {
      const why = report.status === "failed" ? report.error || "it failed" : "it is still being written";
      $("report-body").replaceChildren(el("p", { text: `No report to show: ${why}.` }));
      return;
    }
    state.opened.add(report.id);
    button.classList.add("opened");
    updateOpened();
    $("report-body").replaceChildren(...reportView(report.body));
  } catch (error) {
    // Reports are optional: say why this one cannot be shown and let the evaluator go on.
    if (state.task === task) $("report-body").replaceChildren(el("p", { text: `Report unavailable: ${error.message}` }));
  }
}

function reportView(body) {
  switch (body.kind) { // the report body's tag
    case "evidence":
      return [el("p", { text: `${body.unsupported} unsupported sentence(s).` }), el("ol", {}, ...body.sentences.map(
        (sentence) => el("li", { className: sentence.unsupported ? "unsupported" : "" },
          `${sentence.text} (support ${sentence.support.toFixed(2)})`,
          el("ul", {}, ...sentence.supports.map((support) =>
            el("li", { text: `${support.score.toFixed(2)}: ${support.text}` }))))))];
    case "critique":
      if (!body.items.length) return [el("p", { text: "The critique found no problems." })];
      return [el("ol", {}, ...body.items.map((item) =>
        el("li", { text: `[${item.kind}] “${item.quote}” – ${item.explanation}` })))];
    case "compare":
      return ["a", "b"].map((name) => el("p", {
        text: `${name === "a" ? "First" : "Second"}: mean support ${body[name].mean_support.toFixed(2)}, ` +
          `${body[name].unsupported} unsupported sentence(s).`,
      })).concat([el("p", { text: `${body.aligned.length} aligned sentence pairs.` })]);
    case "qa":
      return [el("p", { text: `Q: ${body.question}` }), el("p", { text: `A: ${body.answer}` })];
    default:
      return [el("pre", { text: JSON.stringify(body, null, 2) })];
  }
}

function updateOpened() {
  $("opened").textContent = state.opened.size ? [...state.opened].join(", ") : "none";
}

function choose(choice) {
  if (!state.task) return;
  state.choice = choice;
  for (const button of document.querySelectorAll(".choices button")) {
    button.classList.toggle("selected", button.dataset.choice === String(choice));
  }
  $("side-0").classList.toggle("chosen", choice === 0);
  $("side-1").classList.toggle("chosen", choice === 1);
  $("submit").disabled = false;
}

async function submit() {
  if (!state.task || state.choice === null || state.busy) return;
  state.busy = true;
  $("submit").disabled = true;
  const flagged = [...state.flagged].map((key) => {
    const [candidate, item] = key.split(":").map(Number);
    return { candidate, item };
  });
  try {
    const comparison = await api("POST", "/v1/comparisons", {
      task: state.task.id,
      preference: state.choice,
      confidence: Number($("confidence").value),
      rationale: $("rationale").value,
      reports_opened: [...state.opened],
      flagged,
    });
    state.task = null;
    $("task").hidden = true;
    setStatus(`Saved comparison ${comparison.id}.`);
    $("next").hidden = false;
    document.body.dataset.saved = comparison.id;
  } catch (error) {
    setStatus(`Not saved: ${error.message}`, true);
    state.busy = false;
    $("submit").disabled = false;
    if (error.status === 409) $("next").hidden = false;
  }
}

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target.tagName === "TEXTAREA" || (target.tagName === "INPUT" && target.type !== "range")) return;
  if (!state.task) return;
  const choices = { a: 0, b: 1, t: "tie" };
  if (event.key in choices) {
    event.preventDefault();
    choose(choices[event.key]);
  } else if (event.key === "Enter" && state.choice !== null) {
    event.preventDefault(); // even on a focused button: Enter submits once a choice is made
    submit();
  }
}

function start() {
  takeKeyFromAddress();
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("key").value.trim());
    $("key").value = "";
    loadTask();
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    state.task = null;
    askForKey("");
  });
  $("next").addEventListener("click", loadTask);
  for (const button of document.querySelectorAll(".choices button")) {
    button.addEventListener("click", () => {
      choose(button.dataset.choice === "tie" ? "tie" : Number(button.dataset.choice));
    });
  }
  $("confidence").addEventListener("input", () => {
    $("confidence-value").textContent = Number($("confidence").value).toFixed(2);
  });
  $("answer").addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  document.addEventListener("keydown", onKey);
  if (sessionStorage.getItem(KEY)) loadTask();
  else askForKey("");
}

start();
