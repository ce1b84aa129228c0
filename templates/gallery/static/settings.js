// A space's settings page: every change goes through the REST API with the session's CSRF token in the
// X-CSRF-Token header (a page elsewhere can make the browser send the cookie, never read this token).
(() => {
  "use strict";
  const root = document.getElementById("settings-page");
  if (!root) return;
  const id = root.dataset.space;
  const api = `/api/spaces/${id}`;
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const status = (name, text, bad = false) => {
    const box = root.querySelector(`[data-status="${name}"]`);
    box.textContent = text;
    box.classList.toggle("notice", bad);
    box.classList.toggle("error", bad);
  };

  const call = async (method, path, body) => {
    const response = await fetch(`${api}${path}`, {
      method, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, Accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.message ? `${data.message}${data.hint ? ` (${data.hint})` : ""}` : `HTTP ${response.status}`);
    return { data, restarted: response.headers.get("X-Spaces-Restarted") === "1" };
  };

  // --- visibility ---------------------------------------------------------------------------------------
  const privateBox = document.getElementById("private");
  privateBox.addEventListener("change", async () => {
    privateBox.disabled = true;
    try {
      const { data } = await call("PUT", "/settings", { private: privateBox.checked });
      privateBox.checked = data.private;
      status("visibility", `This space is ${data.private ? "private" : "public"}.`);
    } catch (err) {
      privateBox.checked = !privateBox.checked;
      status("visibility", `Not changed: ${err.message}`, true);
    } finally {
      privateBox.disabled = false;
    }
  });

  const ago = (iso) => {
    const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    for (const [unit, size] of [["day", 86400], ["hour", 3600], ["minute", 60]]) {
      if (seconds >= size) { const n = Math.floor(seconds / size); return `${n} ${unit}${n === 1 ? "" : "s"} ago`; }
    }
    return "just now";
  };

  // --- secrets and variables: the lists are drawn from the API's answer, which never holds a secret's value --
  const drawList = (kind, items) => {
    const list = document.getElementById(kind === "secrets" ? "secret-list" : "variable-list");
    list.replaceChildren(...Object.values(items).map((item) => {
      const li = document.createElement("li");
      li.dataset.key = item.key;
      const key = document.createElement("code");
      key.textContent = item.key;
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = kind === "secrets" ? `value hidden · set ${ago(item.updatedAt)}` : item.value;
      const remove = document.createElement("button");
      Object.assign(remove, { type: "button", className: "btn small", textContent: "Delete" });
      remove.dataset.delete = kind;
      remove.dataset.key = item.key;
      li.append(key, value, remove);
      return li;
    }));
  };
  const restartNote = (restarted) => (restarted ? " The app restarts with it." : "");

  for (const kind of ["secrets", "variables"]) {
    const singular = kind === "secrets" ? "secret" : "variable";
    const formEl = document.getElementById(`${singular}-form`);
    formEl.addEventListener("submit", async (event) => {
      event.preventDefault();
      const keyInput = formEl.elements.key;
      const valueInput = formEl.elements.value;
      const key = keyInput.value.trim();
      const value = valueInput.value;
      valueInput.value = ""; // a secret's value leaves the page at once, whatever the answer
      try {
        const { data, restarted } = await call("POST", `/${kind}`, { key, value });
        drawList(kind, data);
        keyInput.value = "";
        status(kind, `${key} saved.${restartNote(restarted)}`);
      } catch (err) {
        if (kind === "variables") valueInput.value = value;
        status(kind, `Not saved: ${err.message}`, true);
      }
    });
  }
  root.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-delete]");
    if (!button) return;
    const kind = button.dataset.delete;
    const key = button.dataset.key;
    button.disabled = true;
    try {
      const { data, restarted } = await call("DELETE", `/${kind}`, { key });
      drawList(kind, data);
      status(kind, `${key} deleted.${restartNote(restarted)}`);
    } catch (err) {
      button.disabled = false;
      status(kind, `Not deleted: ${err.message}`, true);
    }
  });

  // --- share links ----------------------------------------------------------------------------------------
  const shareOut = document.getElementById("share-out");
  const shareLink = document.getElementById("share-link");
  document.getElementById("share-create").addEventListener("click", async () => {
    try {
      const { data } = await call("POST", "/share", { expires: document.getElementById("share-expires").value });
      shareLink.value = data.url;
      shareOut.hidden = false;
      shareLink.select();
      status("share", `Anyone with this link opens ${id} until ${new Date(data.expires_at * 1000).toLocaleString()}.`);
    } catch (err) {
      status("share", `No link: ${err.message}`, true);
    }
  });
  document.getElementById("share-copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(shareLink.value);
      status("share", "Link copied.");
    } catch {
      shareLink.select();
      status("share", "Select the link and copy it.");
    }
  });
  document.getElementById("share-revoke").addEventListener("click", async () => {
    try {
      await call("POST", "/share/revoke");
      shareLink.value = "";
      shareOut.hidden = true;
      status("share", "Every share link of this space is revoked: none of them opens it any more.");
    } catch (err) {
      status("share", `Not revoked: ${err.message}`, true);
    }
  });

  // --- delete, once its name is typed ----------------------------------------------------------------------
  const confirmBox = document.getElementById("delete-confirm");
  const deleteButton = document.getElementById("delete-space");
  confirmBox.addEventListener("input", () => { deleteButton.disabled = confirmBox.value.trim() !== id; });
  deleteButton.addEventListener("click", async () => {
    if (confirmBox.value.trim() !== id) return;
    deleteButton.disabled = true;
    try {
      await call("DELETE", "");
      status("delete", `${id} is deleted.`);
      location.assign("/");
    } catch (err) {
      deleteButton.disabled = false;
      status("delete", `Not deleted: ${err.message}`, true);
    }
  });
})();
