/* The live execution page: draws task states on the server-rendered DAG, follows the flow's
 * WebSocket (replaying whatever was missed across reconnects) and lets a person correct a
 * task's output through the JSON API (PUT /api/task-executions, optimistic lock).
 * Plain JavaScript, no build step, nothing fetched from outside this server. */
(() => {
  "use strict";

  const boot = JSON.parse(document.getElementById("execution-data").textContent);
  const executionId = boot.flow_execution.id;
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;

  const EDITABLE = new Set(["completed", "failed", "cancelled", "awaiting_input"]);
  const ACTIVE = new Set(["queued", "running"]);
  const LABELS = { awaiting_input: "awaiting input", cancel_requested: "cancel requested" };
  const EDITED = {
    not_edited: "no",
    edited_not_reexecuted: "yes, downstream not re-run",
    edited_reexecuted: "yes, downstream re-run",
  };

  const state = {
    execution: boot.flow_execution,
    tasks: boot.tasks, // task name → its latest task execution (as the API renders it)
    outputs: boot.outputs, // task name → its task output
    attempts: {}, // task name → every task execution, once the panel loaded them
    history: {}, // task name → TaskStatus rows, once the panel loaded them
    trail: {}, // task name → every status the page displayed, in order
    lastEventId: boot.last_event_id,
    seen: new Set(),
    selected: null,
  };

  // -- small helpers -------------------------------------------------------------------------

  const $ = (selector, root = document) => root.querySelector(selector);
  const label = (status) => LABELS[status] || status;
  const time = (iso) => (iso ? Date.parse(iso) : NaN);

  function displayStatus(te) {
    if (!te) return "pending";
    if (te.stale_status === "stale" && !ACTIVE.has(te.status)) return "stale";
    return te.status;
  }

  function formatDuration(ms) {
    if (!Number.isFinite(ms) || ms < 0) return "";
    const s = ms / 1000;
    if (s < 10) return `${s.toFixed(1)} s`;
    if (s < 60) return `${Math.round(s)} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${Math.round(s - m * 60)} s`;
    return `${Math.floor(m / 60)} h ${m % 60} min`;
  }

  function formatClock(iso) {
    if (!iso) return "—";
    return new Date(iso).toLocaleTimeString([], { hour12: false });
  }

  function json(value) {
    return value === undefined ? "—" : JSON.stringify(value, null, 2);
  }

  function statusBadge(status) {
    const span = document.createElement("span");
    span.className = `status status-${status}`;
    span.innerHTML = '<svg class="icon" aria-hidden="true" focusable="false"><use></use></svg>' +
      '<span class="status-text"></span>';
    $("use", span).setAttribute("href", `#i-${status}`);
    $(".status-text", span).textContent = label(status);
    return span;
  }

  function timing(te) {
    if (!te) return "";
    const started = time(te.started_at);
    if (te.completed_at && Number.isFinite(started)) {
      return `took ${formatDuration(time(te.completed_at) - started)}`;
    }
    if (te.status === "running" && Number.isFinite(started)) {
      return `running ${formatDuration(Date.now() - started)}`;
    }
    if (te.status === "queued") return "waiting for a worker";
    if (te.status === "awaiting_input") return "needs a person";
    return "";
  }

  // -- the graph -----------------------------------------------------------------------------

  const nodes = {};
  document.querySelectorAll("button.node[data-task]").forEach((button) => {
    nodes[button.dataset.task] = button;
    button.addEventListener("click", () => openPanel(button.dataset.task));
  });
  const edges = Array.from(document.querySelectorAll(".dag-edges path.edge"));

  function renderNode(name) {
    const button = nodes[name];
    if (!button) return;
    const te = state.tasks[name];
    const status = displayStatus(te);
    const trail = (state.trail[name] = state.trail[name] || []);
    if (trail[trail.length - 1] !== status) trail.push(status);
    button.dataset.status = status;
    $("use", button).setAttribute("href", `#i-${status}`);
    $(".node-status", button).textContent = label(status);
    let attempt = "";
    if (te) {
      attempt = `#${te.task_execution_idx}`;
      if (te.max_attempts > 1) attempt += ` · try ${te.attempt}/${te.max_attempts}`;
    }
    $(".node-attempt", button).textContent = attempt;
    $(".node-edited", button).hidden = !te || te.edited_status === "not_edited";
    $(".node-time", button).textContent = timing(te);
  }

  function renderEdges() {
    for (const edge of edges) {
      const source = displayStatus(state.tasks[edge.dataset.source]);
      edge.dataset.state = source === "completed" ? "done" : source === "stale" ? "stale" : "waiting";
    }
  }

  function renderProgress() {
    const names = boot.task_names;
    const counts = {};
    for (const name of names) {
      const status = displayStatus(state.tasks[name]);
      counts[status] = (counts[status] || 0) + 1;
    }
    const parts = [`${counts.completed || 0} of ${names.length} tasks completed`];
    for (const status of ["running", "queued", "failed", "stale", "awaiting_input"]) {
      if (counts[status]) parts.push(`${counts[status]} ${label(status)}`);
    }
    $("#execution-progress").textContent = parts.join(" · ");
  }

  function renderExecution() {
    const holder = $("#execution-status");
    if (holder.dataset.status !== state.execution.status) {
      holder.dataset.status = state.execution.status;
      holder.replaceChildren(statusBadge(state.execution.status));
    }
    const started = time(state.execution.started_at);
    const end = state.execution.completed_at ? time(state.execution.completed_at) : Date.now();
    let text = "";
    if (Number.isFinite(started)) {
      text = `started ${formatClock(state.execution.started_at)}`;
      text += state.execution.completed_at
        ? ` · finished ${formatClock(state.execution.completed_at)} · took ${formatDuration(end - started)}`
        : ` · ${formatDuration(end - started)} so far`;
    }
    $("#execution-timing").textContent = text;
  }

  function renderAll() {
    Object.keys(nodes).forEach(renderNode);
    renderEdges();
    renderProgress();
    renderExecution();
    if (state.selected) renderPanel();
  }

  // -- applying events -----------------------------------------------------------------------

  function newer(candidate, current) {
    if (!current) return true;
    return time(candidate.updated_at) >= time(current.updated_at);
  }

  function upsertTask(te) {
    const name = te.task_name;
    const list = state.attempts[name];
    if (list) {
      const index = list.findIndex((row) => row.id === te.id);
      if (index === -1) list.push(te);
      else if (newer(te, list[index])) list[index] = te;
    }
    const current = state.tasks[name];
    const replaces =
      !current ||
      te.task_execution_idx > current.task_execution_idx ||
      (te.task_execution_idx === current.task_execution_idx && newer(te, current));
    if (replaces) state.tasks[name] = te;
    renderNode(name);
    renderEdges();
    renderProgress();
    if (state.selected === name) renderPanel();
  }

  function upsertOutput(output) {
    if (newer(output, state.outputs[output.task_name])) state.outputs[output.task_name] = output;
    if (state.selected === output.task_name) renderPanel();
  }

  function addStatusRow(row) {
    const list = (state.history[row.task_name] = state.history[row.task_name] || []);
    if (!list.some((item) => item.id === row.id)) list.push(row);
    if (state.selected === row.task_name) renderHistory();
  }

  function applyEvent(event) {
    if (event.id != null) {
      if (state.seen.has(event.id)) return;
      state.seen.add(event.id);
      if (event.id > state.lastEventId) state.lastEventId = event.id;
    }
    if (event.flow_execution_id !== executionId || !event.data) return;
    const type = event.event_type || "";
    if (type.startsWith("task_execution.")) upsertTask(event.data);
    else if (type.startsWith("task_output.")) upsertOutput(event.data);
    else if (type === "task_status.added") addStatusRow(event.data);
    else if (type.startsWith("flow_execution.") && event.data.id === executionId) {
      if (newer(event.data, state.execution)) state.execution = event.data;
      renderExecution();
    }
  }

  // -- the task panel ------------------------------------------------------------------------

  const panel = $("#task-panel");
  const grid = $("#execution-grid");
  const editor = $("#output-editor");
  const editMessage = $("#edit-message");
  const editing = { name: null, dirty: false, base: null };

  async function getJSON(url) {
    const response = await fetch(url, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const message = body && body.error ? body.error.message : `HTTP ${response.status}`;
      throw new Error(message);
    }
    return body;
  }

  function openPanel(name) {
    state.selected = name;
    for (const [task, button] of Object.entries(nodes)) {
      button.setAttribute("aria-pressed", String(task === name));
    }
    panel.hidden = false;
    grid.classList.add("with-panel");
    editing.name = name;
    editing.dirty = false;
    editing.base = null;
    setEditMessage("", "");
    renderPanel();
    $("#panel-title").focus();
    loadPanel(name);
  }

  function closePanel() {
    const name = state.selected;
    state.selected = null;
    panel.hidden = true;
    grid.classList.remove("with-panel");
    if (name && nodes[name]) {
      nodes[name].setAttribute("aria-pressed", "false");
      nodes[name].focus();
    }
  }

  async function loadPanel(name) {
    const query = new URLSearchParams({ flow_execution_id: executionId, task_name: name });
    const loading = $("#panel-loading");
    const failure = $("#panel-load-error");
    loading.hidden = false;
    failure.hidden = true;
    try {
      const [attempts, outputs, history] = await Promise.all([
        getJSON(`${boot.urls.task_executions}?${query}`),
        getJSON(`${boot.urls.task_outputs}?${query}`),
        getJSON(`${boot.urls.status_history}?${new URLSearchParams({ task_name: name })}`),
      ]);
      attempts.forEach((te) => {
        const list = (state.attempts[name] = state.attempts[name] || []);
        if (!list.some((row) => row.id === te.id)) list.push(te);
        upsertTask(te);
      });
      outputs.forEach(upsertOutput);
      const known = state.history[name] || [];
      state.history[name] = history.concat(known.filter((r) => !history.some((h) => h.id === r.id)));
    } catch (error) {
      failure.textContent = `Could not load the task's details: ${error.message}`;
      failure.hidden = false;
    } finally {
      loading.hidden = true;
      if (state.selected === name) renderPanel();
    }
  }

  function setText(selector, text) {
    $(selector).textContent = text;
  }

  function renderPanel() {
    const name = state.selected;
    if (!name) return;
    const te = state.tasks[name];
    const output = state.outputs[name];
    const status = displayStatus(te);
    $(".panel-task", panel).textContent = name;
    $("#panel-status").replaceChildren(statusBadge(status));
    setText("#panel-attempt", te
      ? `${te.task_execution_idx}${te.max_attempts > 1 ? ` (try ${te.attempt} of ${te.max_attempts})` : ""}`
      : "not started");
    setText("#panel-executor", (te && te.task_executor_name) || boot.executors[name] || "—");
    setText("#panel-started", te ? formatClock(te.started_at) : "—");
    setText("#panel-finished", te ? formatClock(te.completed_at) : "—");
    setText("#panel-duration", timing(te) || "—");
    setText("#panel-modified", te ? `${te.modified_by}${te.modified_by === boot.actor ? " (you)" : ""}` : "—");
    setText("#panel-edited", te ? EDITED[te.edited_status] || te.edited_status : "—");
    const reason = $("#panel-stale-reason");
    reason.hidden = !(te && te.stale_reason && status === "stale");
    if (!reason.hidden) {
      const r = te.stale_reason;
      reason.textContent = `Stale: ${r.task_name} was edited by ${r.modified_by || "someone"}` +
        `${r.edited_at ? ` at ${formatClock(r.edited_at)}` : ""}.`;
    }
    $("#panel-error-section").hidden = !(te && te.error);
    setText("#panel-error", te && te.error ? json(te.error) : "");
    setText("#panel-input", te ? json(te.input) : "— (not started)");
    setText("#panel-output", te ? json(te.output) : "—");
    setText("#panel-summary", output ? json(output.summary) : "—");
    renderEditor(te, status);
    renderAttempts(name);
    renderHistory();
  }

  function renderEditor(te, status) {
    const allowed = !!te && EDITABLE.has(te.status);
    $("#save-button").disabled = !allowed;
    $("#rerun-button").disabled = !allowed;
    editor.disabled = !allowed;
    if (!editing.dirty) {
      editing.base = te ? { ...te } : null;
      editor.value = te && allowed ? json(te.output) : "";
    }
    const downstream = boot.downstream[state.selected] || [];
    let hint;
    if (!te) hint = "This task has not run yet.";
    else if (!allowed) hint = `A ${label(status)} task cannot be edited; wait until it finishes.`;
    else if (downstream.length) hint = `Saving marks ${downstream.join(", ")} stale.`;
    else hint = "No task depends on this one.";
    setText("#edit-hint", hint);
  }

  function renderAttempts(name) {
    const rows = (state.attempts[name] || (state.tasks[name] ? [state.tasks[name]] : []))
      .slice()
      .sort((a, b) => a.task_execution_idx - b.task_execution_idx);
    const body = $("#panel-attempts");
    body.replaceChildren(
      ...rows.map((te) => {
        const tr = document.createElement("tr");
        const cells = [String(te.task_execution_idx), null, formatClock(te.started_at),
          te.completed_at ? formatDuration(time(te.completed_at) - time(te.started_at)) : "—"];
        cells.forEach((text, index) => {
          const td = document.createElement(index === 0 ? "th" : "td");
          if (index === 0) td.scope = "row";
          if (text === null) td.append(statusBadge(displayStatus(te)));
          else td.textContent = text;
          tr.append(td);
        });
        return tr;
      })
    );
  }

  function renderHistory() {
    const list = $("#panel-history");
    const rows = state.history[state.selected];
    if (!rows) return list.replaceChildren();
    if (!rows.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "No status reported yet.";
      return list.replaceChildren(li);
    }
    list.replaceChildren(
      ...rows.map((row) => {
        const li = document.createElement("li");
        const when = document.createElement("time");
        when.dateTime = row.created_at;
        when.textContent = formatClock(row.created_at);
        li.append(when, " ", row.status === null ? "(no status)" : String(row.status));
        return li;
      })
    );
  }

  function setEditMessage(kind, text, reload) {
    editMessage.className = `edit-message ${kind}`;
    editMessage.textContent = text;
    if (reload) {
      const link = document.createElement("a");
      link.href = location.href;
      link.textContent = "Reload";
      editMessage.append(" ", link);
    }
  }

  async function save(executeFlow, submitter) {
    const base = editing.base;
    if (!base) return;
    let output;
    try {
      output = JSON.parse(editor.value);
    } catch (error) {
      editor.setAttribute("aria-invalid", "true");
      return setEditMessage("error", `The output is not valid JSON: ${error.message}`);
    }
    editor.removeAttribute("aria-invalid");
    const body = {
      id: base.id,
      flow_execution_id: base.flow_execution_id,
      organization_id: base.organization_id,
      task_name: base.task_name,
      task_execution_idx: base.task_execution_idx,
      status: base.status === "awaiting_input" ? "completed" : base.status,
      output,
      updated_at: base.updated_at,
    };
    const buttons = [$("#save-button"), $("#rerun-button")];
    buttons.forEach((button) => (button.disabled = true));
    setEditMessage("pending", "Saving…");
    try {
      const response = await fetch(`${boot.urls.task_executions}?execute_flow=${executeFlow}`, {
        method: "PUT",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          Accept: "application/json",
          "X-CSRFToken": csrfToken,
        },
        body: JSON.stringify(body),
      });
      const answer = await response.json().catch(() => null);
      if (response.status === 409) {
        return setEditMessage("error", "This task was changed by someone else — reload to see the latest version.", true);
      }
      if (!response.ok) {
        const message = answer && answer.error ? answer.error.message : `HTTP ${response.status}`;
        return setEditMessage("error", `Not saved: ${message}`);
      }
      editing.dirty = false;
      if (answer && answer.id) upsertTask(answer);
      const downstream = boot.downstream[base.task_name] || [];
      let text = "Saved.";
      if (downstream.length) {
        text = executeFlow
          ? `Saved. Re-running ${downstream.join(", ")}.`
          : `Saved. ${downstream.join(", ")} marked stale.`;
      }
      setEditMessage("ok", text);
    } catch (error) {
      setEditMessage("error", `Not saved: ${error.message}. Check your connection and try again.`);
    } finally {
      if (state.selected) renderPanel();
      // Disabling the button while saving dropped the focus; give it back.
      if (document.activeElement === document.body && !submitter.disabled) submitter.focus();
    }
  }

  editor.addEventListener("input", () => {
    editing.dirty = true;
  });
  $("#edit-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const submitter = event.submitter || $("#save-button");
    save(submitter.value === "true", submitter);
  });
  $("#panel-close").addEventListener("click", closePanel);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.selected) closePanel();
  });

  // -- start ---------------------------------------------------------------------------------

  renderAll();
  setInterval(() => {
    for (const name of Object.keys(nodes)) {
      const te = state.tasks[name];
      if (te && te.status === "running") $(".node-time", nodes[name]).textContent = timing(te);
    }
    if (!state.execution.completed_at) renderExecution();
  }, 500);
  const live = new window.FlowplatformLiveConnection({
    path: boot.urls.websocket,
    since: () => state.lastEventId,
    onEvent: applyEvent,
    indicator: $("#connection"),
  });
  live.connect();

  // For people debugging in the console and for the browser tests.
  window.flowplatformPage = { state, live, displayStatus };
})();
