// The gallery's live parts: search/sort/filter without reloads, lazy loading, and stage badges over SSE.
(() => {
  "use strict";
  const form = document.getElementById("filters");
  const listing = document.getElementById("listing");
  if (!form || !listing) return;
  let pages = Number(new URLSearchParams(location.search).get("page")) || 1;
  let generation = 0;

  const params = (extra = {}) => {
    const data = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (value) data.set(key, value);
    if (data.get("sort") === "trending") data.delete("sort");
    for (const [key, value] of Object.entries(extra)) data.set(key, value);
    return data;
  };

  const fetchHTML = async (url) => {
    const response = await fetch(url, { headers: { Accept: "text/html" } });
    if (!response.ok) throw new Error(`${url}: ${response.status}`);
    return response.text();
  };

  // Re-render the whole listing (filters changed, or an app appeared): keep as many pages as were loaded.
  const refresh = async (keepPages = false) => {
    const mine = ++generation;
    if (!keepPages) pages = 1;
    const query = params(keepPages && pages > 1 ? { page: pages, through: 1 } : {});
    const html = await fetchHTML(`/_platform/cards?${query}`);
    if (mine !== generation) return; // a newer request won
    listing.innerHTML = html;
    const visible = params();
    history.replaceState(null, "", visible.toString() ? `/?${visible}` : "/");
    watchMore();
  };

  let timer = 0;
  const soon = (fn, ms = 180) => { clearTimeout(timer); timer = setTimeout(fn, ms); };
  form.addEventListener("input", (event) => soon(() => refresh(), event.target.type === "search" ? 180 : 0));
  form.addEventListener("submit", (event) => { event.preventDefault(); refresh(); });

  // Lazy loading: the next page arrives when "Load more" scrolls into view (or is clicked).
  let loading = false;
  const loadMore = async (more) => {
    if (loading) return;
    loading = true;
    try {
      const html = await fetchHTML(`/_platform/cards?${more.dataset.next}`);
      const template = document.createElement("template");
      template.innerHTML = html;
      const list = document.getElementById("cards");
      template.content.querySelectorAll("li.card-item").forEach((li) => list.appendChild(li));
      const next = template.content.querySelector(".more");
      more.replaceWith(...(next ? [next] : []));
      pages += 1;
      watchMore();
    } finally {
      loading = false;
    }
  };
  let observer = null;
  const watchMore = () => {
    const more = listing.querySelector(".more");
    if (!more) return;
    more.querySelector("a").addEventListener("click", (event) => { event.preventDefault(); loadMore(more); });
    if ("IntersectionObserver" in window) {
      observer?.disconnect();
      observer = new IntersectionObserver((entries) => {
        if (entries.some((e) => e.isIntersecting)) loadMore(more);
      }, { rootMargin: "400px" });
      observer.observe(more);
    }
  };
  watchMore();

  const cardOf = (id) => listing.querySelector(`li.card-item[data-space="${CSS.escape(id)}"]`);

  // One card re-rendered by the server: badge, title, likes and time all come back fresh.
  const refreshCard = async (id) => {
    const li = cardOf(id);
    if (!li) return soon(() => refresh(true), 300); // filtered out or not loaded: one debounced refresh
    const hadFocus = li.contains(document.activeElement);
    const template = document.createElement("template");
    template.innerHTML = (await fetchHTML(`/_platform/card/${id}`)).trim();
    const fresh = template.content.firstElementChild;
    if (!fresh || !li.isConnected) return;
    li.replaceWith(fresh);
    if (hadFocus) fresh.querySelector("a")?.focus();
  };

  const connect = () => {
    const events = new EventSource("/api/events");
    let opened = false;
    events.addEventListener("open", () => { if (opened) refresh(true); opened = true; }); // catch up after a drop
    events.addEventListener("stage", (event) => {
      const data = JSON.parse(event.data);
      const li = cardOf(data.id);
      if (li) li.dataset.stage = data.stage;
      if (form.running?.checked) soon(() => refresh(true), 100);
      else refreshCard(data.id).catch(() => {});
    });
    events.addEventListener("created", () => soon(() => refresh(true), 100));
    events.addEventListener("deleted", (event) => {
      cardOf(JSON.parse(event.data).id)?.remove();
      soon(() => refresh(true), 300);
    });
  };
  if ("EventSource" in window) connect();

  // "3 minutes ago" stays true while the page is open.
  const ago = (seconds) => {
    for (const [unit, size] of [["day", 86400], ["hour", 3600], ["minute", 60]]) {
      if (seconds >= size) { const n = Math.floor(seconds / size); return `${n} ${unit}${n === 1 ? "" : "s"} ago`; }
    }
    return "just now";
  };
  setInterval(() => {
    const now = Date.now() / 1000;
    document.querySelectorAll("time[data-ts]").forEach((t) => { t.textContent = ago(now - Number(t.dataset.ts)); });
  }, 30000);
})();
