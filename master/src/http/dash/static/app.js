// clusterctl's dashboard script. It only enhances: every action is a
// plain form that works without it. It follows the tab's one live stream
// (rows and events re-rendered by the master), opens a bulk action's
// preview in a dialog, copies commands, and switches the theme.
(() => {
  "use strict";
  const root = document.documentElement;
  const saved = localStorage.getItem("theme");
  if (saved) root.dataset.theme = saved;

  document.addEventListener("click", (ev) => {
    const t = ev.target.closest("[data-theme-toggle]");
    if (t) {
      const dark = root.dataset.theme
        ? root.dataset.theme === "dark"
        : matchMedia("(prefers-color-scheme: dark)").matches;
      root.dataset.theme = dark ? "light" : "dark";
      localStorage.setItem("theme", root.dataset.theme);
      return;
    }
    const c = ev.target.closest("[data-copy]");
    if (c) {
      navigator.clipboard?.writeText(c.dataset.copy).then(() => {
        c.textContent = "Copied";
        setTimeout(() => (c.textContent = c.textContent.replace("Copied", "Copy")), 1500);
      });
      return;
    }
    const close = ev.target.closest("[data-close]");
    if (close && close.closest("dialog")) {
      ev.preventDefault();
      close.closest("dialog").close();
    }
  });

  const status = document.querySelector("[data-live-status]");
  const say = (text) => { if (status) status.textContent = text; };

  // A bulk action: its preview in a dialog, then the action itself.
  const dialog = document.getElementById("preview");
  async function post(form, submitter) {
    const data = new FormData(form, submitter);
    data.set("fragment", "1");
    // Not form.action: the buttons are named "action" too.
    const resp = await fetch(form.getAttribute("action"), {
      method: "POST",
      body: new URLSearchParams(data),
      credentials: "same-origin",
    });
    const text = await resp.text();
    if ((resp.headers.get("content-type") || "").includes("problem+json")) {
      try { return { ok: false, html: null, message: JSON.parse(text).detail }; } catch (_) {}
    }
    return { ok: resp.ok, html: text, message: null };
  }
  document.addEventListener("submit", async (ev) => {
    const form = ev.target;
    if (!dialog || !(form.matches("[data-preview]") || form.matches("[data-apply]"))) return;
    ev.preventDefault();
    const r = await post(form, ev.submitter);
    if (r.message) {
      dialog.innerHTML = "";
      const p = document.createElement("p");
      p.className = "flash bad"; p.setAttribute("role", "alert"); p.textContent = r.message;
      const b = document.createElement("button");
      b.type = "button"; b.textContent = "Close"; b.dataset.close = "";
      dialog.append(p, b);
    } else {
      dialog.innerHTML = r.html;
    }
    if (!dialog.open) dialog.showModal();
    if (form.matches("[data-apply]") && r.ok && !r.message) {
      document.querySelectorAll('input[name="node"][form="bulk"]:checked').forEach((i) => (i.checked = false));
      const bulk = document.getElementById("bulk");
      if (bulk) bulk.reset();
      setTimeout(() => dialog.open && dialog.close(), 1200);
      // Only the nodes list is live row by row: another page shows it anew.
      if (!document.getElementById("bulk")) setTimeout(() => location.reload(), 600);
    }
    (dialog.querySelector("button[type=submit], [autofocus], button") || dialog).focus();
  });

  // The tab's live stream.
  const live = document.body.dataset.live;
  if (!live || !window.EventSource) return;
  const rows = document.querySelector("[data-rows] tbody");
  const events = document.querySelector("[data-events]");
  const source = new EventSource(live);
  source.addEventListener("open", () => say("live"));
  source.addEventListener("error", () => say("reconnecting…"));
  source.addEventListener("rows", (ev) => {
    if (!rows) return;
    for (const { name, html } of JSON.parse(ev.data)) {
      const old = document.getElementById("node-" + name);
      if (html === null) { old?.remove(); continue; }
      const tpl = document.createElement("template");
      tpl.innerHTML = html.trim();
      const row = tpl.content.firstElementChild;
      if (old) {
        // Cell by cell, the checkbox's cell kept: a tick or a click in
        // progress is never lost to an update.
        old.dataset.state = row.dataset.state;
        [...row.children].forEach((cell, i) => {
          const was = old.children[i];
          if (i > 0 && was && was.innerHTML !== cell.innerHTML) was.replaceWith(cell.cloneNode(true));
        });
      } else {
        const after = [...rows.children].find((r) => r.dataset.node > name);
        rows.insertBefore(row, after || null);
      }
    }
    say("updated " + new Date().toLocaleTimeString());
  });
  source.addEventListener("events", (ev) => {
    if (!events) return;
    for (const { html } of JSON.parse(ev.data)) {
      const tpl = document.createElement("template");
      tpl.innerHTML = html.trim();
      events.prepend(tpl.content.firstElementChild);
    }
  });
  // A running job's nodes: whole when new or when their state changes,
  // else their new output appended (as text: never parsed as markup),
  // following the end of a stream that was scrolled to its end.
  const jobnodes = document.querySelector("[data-jobnodes]");
  source.addEventListener("output", (ev) => {
    if (!jobnodes) return;
    for (const n of JSON.parse(ev.data)) {
      const old = document.getElementById("jobnode-" + n.node);
      if (n.html !== undefined) {
        const tpl = document.createElement("template");
        tpl.innerHTML = n.html.trim();
        const el = tpl.content.firstElementChild;
        if (old) old.replaceWith(el); else jobnodes.append(el);
        continue;
      }
      if (!old) continue;
      for (const [key, text] of [["out", n.out], ["err", n.err]]) {
        if (!text) continue;
        const pre = old.querySelector("[data-" + key + "]");
        const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.append(text);
        if (atEnd) pre.scrollTop = pre.scrollHeight;
      }
    }
  });
  source.addEventListener("refresh", async () => {
    const resp = await fetch(location.href, { credentials: "same-origin" });
    if (!resp.ok) return;
    const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
    const main = doc.querySelector("main");
    if (main) document.querySelector("main").replaceWith(main);
  });
  source.addEventListener("logout", () => { source.close(); location.href = "/login"; });
  // A page left (or kept in the back-forward cache) lets its connection
  // go: browsers allow only six per host over HTTP/1.1.
  addEventListener("pagehide", () => source.close());
  addEventListener("pageshow", (ev) => { if (ev.persisted) location.reload(); });
})();
