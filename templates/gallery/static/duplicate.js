// "Duplicate this Space": the Hub's duplicate endpoint, with the session's CSRF token (as every write from a page).
(() => {
  "use strict";
  const root = document.getElementById("duplicate-page");
  if (!root) return;
  const form = document.getElementById("duplicate-form");
  const status = document.getElementById("duplicate-status");
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const target = `${document.getElementById("duplicate-owner").value}/${document.getElementById("duplicate-name").value.trim()}`;
    const secrets = [...form.querySelectorAll("[data-secret]")].filter((i) => i.value)
      .map((i) => ({ key: i.dataset.secret, value: i.value }));
    const button = document.getElementById("duplicate-submit");
    button.disabled = true;
    status.classList.remove("notice", "error");
    status.textContent = `Copying ${root.dataset.space} to ${target}…`;
    try {
      const response = await fetch(`/api/spaces/${root.dataset.space}/duplicate`, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, Accept: "application/json" },
        body: JSON.stringify({ repository: target, private: document.getElementById("duplicate-private").checked, secrets }),
      });
      const data = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(data.message || data.error || `HTTP ${response.status}`);
      location.assign(`/${target}`);
    } catch (err) {
      status.textContent = `Not duplicated: ${err.message}`;
      status.classList.add("notice", "error");
      button.disabled = false;
    }
  });
})();
