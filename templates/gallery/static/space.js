// An app's page: live stage, the app/progress/error panel, streaming logs, like, share and embed.
(() => {
  "use strict";
  const root = document.getElementById("space");
  if (!root) return;
  const id = root.dataset.space;
  const api = `/api/spaces/${id}`;
  const ERROR_LINE = /\b(error|exception|traceback|failed|fatal)\b/i;
  const toastBox = document.querySelector(".toast");
  let toastTimer = 0;
  const toast = (text) => {
    toastBox.textContent = text;
    toastBox.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { toastBox.hidden = true; }, 2600);
  };

  // --- logs: one EventSource per view; a reconnect replays the whole log, so the view starts over -------
  class LogView {
    constructor(pre, kind, { onEnd, onError } = {}) {
      this.pre = pre;
      this.kind = kind;
      this.box = pre.appendChild(document.createElement("span"));
      this.onEnd = onEnd;
      this.onError = onError;
      this.ended = false;
      this.open();
    }
    open() {
      this.ended = false;
      this.source = new EventSource(`${api}/logs/${this.kind}`);
      this.source.addEventListener("open", () => { this.box.textContent = ""; this.errorLine = null; });
      this.source.addEventListener("message", (event) => this.append(event.data.split("\n")));
      this.source.addEventListener("end", (event) => {
        this.close();
        this.ended = true;
        this.onEnd?.(event.data);
      });
    }
    append(lines) {
      const pre = this.pre;
      const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
      const chunk = document.createDocumentFragment();
      for (const line of lines) {
        if (!this.errorLine && ERROR_LINE.test(line)) {
          this.errorLine = document.createElement("mark");
          this.errorLine.className = "err-line";
          this.errorLine.textContent = line;
          chunk.append(this.errorLine, "\n");
          this.onError?.(this.errorLine);
        } else {
          chunk.appendChild(document.createTextNode(line + "\n"));
        }
      }
      this.box.appendChild(chunk);
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    }
    close() { this.source?.close(); }
  }

  // --- tabs (WAI-ARIA: arrows move between tabs, Enter/Space or click select) ----------------------------
  const tabs = [...root.querySelectorAll('[role="tab"]')];
  const views = {};
  const startTabLog = (kind) => {
    if (views[kind] && !views[kind].ended) return;
    const panel = document.getElementById(`panel-${kind}`);
    const pre = panel.querySelector("pre");
    pre.textContent = "";
    const status = panel.querySelector("[data-status]");
    const jump = panel.querySelector("[data-jump]");
    jump.hidden = true;
    status.textContent = kind === "build" ? "Build log (live)" : "Run log (live)";
    views[kind] = new LogView(pre, kind, {
      onEnd: (stage) => { status.textContent = `Build finished: ${stage}`; },
      onError: (line) => {
        jump.hidden = false;
        jump.onclick = () => { line.scrollIntoView({ block: "center" }); };
      },
    });
  };
  const select = (tab, focus = false) => {
    for (const other of tabs) {
      const on = other === tab;
      other.setAttribute("aria-selected", String(on));
      other.tabIndex = on ? 0 : -1;
      document.getElementById(other.getAttribute("aria-controls")).hidden = !on;
    }
    if (focus) tab.focus();
    const kind = tab.id.replace("tab-", "");
    // browsers allow ~6 connections per host: a log nobody looks at must not starve the app's own streams
    for (const [other, view] of Object.entries(views)) {
      if (other !== kind && !view.ended) { view.close(); view.ended = true; }
    }
    if (kind !== "app") startTabLog(kind);
  };
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1, Home: -i, End: tabs.length - 1 - i }[event.key];
      if (step === undefined) return;
      event.preventDefault();
      select(tabs[(i + step + tabs.length) % tabs.length], true);
    });
  });
  root.addEventListener("click", (event) => {
    const opener = event.target.closest("[data-open-tab]");
    if (opener) select(document.getElementById(`tab-${opener.dataset.openTab}`), true);
  });

  // --- the app panel follows the stage ---------------------------------------------------------------------
  const appPanel = document.getElementById("panel-app");
  const badge = document.getElementById("stage");
  let live = [];
  const stopLive = () => { live.forEach((v) => v.close()); live = []; };
  const startLive = (stage) => {
    const pre = appPanel.querySelector("[data-live-log]");
    if (!pre) return;
    if (!live.length) live.push(new LogView(pre, "build"));
    if (stage === "APP_STARTING" && live.length === 1) live.push(new LogView(pre, "run"));
  };
  const applyPanel = (html) => {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    const fresh = template.content.firstElementChild;
    const current = appPanel.querySelector(".app-panel");
    const stage = fresh.dataset.stage;
    badge.textContent = fresh.dataset.stageLabel;
    badge.className = `badge ${fresh.dataset.stageTone}`;
    badge.title = stage;
    root.dataset.stage = stage;
    if (current.dataset.mode !== fresh.dataset.mode) {
      stopLive();
      current.replaceWith(fresh);
    } else if (fresh.dataset.mode === "progress") {
      current.querySelector("[data-steps]").replaceWith(fresh.querySelector("[data-steps]"));
      current.querySelector("[data-progress-text]").replaceWith(fresh.querySelector("[data-progress-text]"));
    }
    if (fresh.dataset.mode === "progress" || current.dataset.mode === "progress") startLive(stage);
  };
  const refreshPanel = async () => {
    const response = await fetch(`/_platform/panel/${id}`);
    if (response.ok) applyPanel(await response.text());
  };
  startLive(root.dataset.stage);

  const connect = () => {
    const events = new EventSource("/api/events");
    let opened = false;
    events.addEventListener("open", () => { if (opened) refreshPanel(); opened = true; });
    events.addEventListener("stage", (event) => {
      const data = JSON.parse(event.data);
      if (data.id !== id) return;
      refreshPanel();
      if (data.stage === "BUILDING" || data.stage === "RUNNING_BUILDING") {
        if (views.build?.ended && !document.getElementById("panel-build").hidden) startTabLog("build");
      }
    });
    events.addEventListener("created", (event) => { if (JSON.parse(event.data).id === id) refreshPanel(); });
    events.addEventListener("deleted", (event) => {
      if (JSON.parse(event.data).id === id) toast("This app was deleted.");
    });
  };
  if ("EventSource" in window) connect();

  // --- like, share, embed ----------------------------------------------------------------------------------
  const like = document.getElementById("like");
  like.addEventListener("click", async () => {
    const liked = like.getAttribute("aria-pressed") !== "true";
    like.disabled = true;
    try {
      // a signed-in browser's writes carry the session's CSRF token (the page has it in a <meta> tag)
      const csrf = document.querySelector('meta[name="csrf-token"]')?.content;
      const response = await fetch(`${api}/like`, {
        method: "POST", body: JSON.stringify({ liked }),
        headers: { "Content-Type": "application/json", ...(csrf ? { "X-CSRF-Token": csrf } : {}) },
      });
      if (!response.ok) throw new Error(String(response.status));
      const data = await response.json();
      like.setAttribute("aria-pressed", String(data.liked));
      document.getElementById("likes").textContent = data.likes;
      document.getElementById("like-label").textContent = data.liked ? "Liked" : "Like";
    } catch (err) {
      toast("Could not save the like; try again.");
    } finally {
      like.disabled = false;
    }
  });

  const copy = async (text) => {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // no async clipboard (plain http on a LAN address): the old way still works in most browsers
      const area = Object.assign(document.createElement("textarea"), { value: text });
      document.body.appendChild(area);
      area.select();
      const ok = document.execCommand("copy");
      area.remove();
      return ok;
    }
  };
  document.getElementById("share").addEventListener("click", async () => {
    const url = root.dataset.url;
    toast((await copy(url)) ? `Link copied: ${url}` : `Copy this link: ${url}`);
  });
  const embed = document.getElementById("embed");
  if (embed) {
    const dialog = document.getElementById("embed-dialog");
    const snippet = document.getElementById("embed-snippet");
    embed.addEventListener("click", () => { dialog.showModal(); snippet.select(); });
    document.getElementById("embed-copy").addEventListener("click", async () => {
      toast((await copy(snippet.value)) ? "Embed code copied" : "Select the code and copy it");
    });
  }
})();
