// berth's one script (docs/design/web.md). Every page works without it;
// it only adds conveniences, and it is served from this site (CSP
// script-src 'self'): no inline script anywhere.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // The local time beside each UTC time.
  for (const t of document.querySelectorAll("time[datetime]")) {
    const d = new Date(t.getAttribute("datetime"));
    if (isNaN(d)) continue;
    const local = document.createElement("span");
    local.className = "local-time";
    local.textContent = "(" + d.toLocaleString(undefined, {dateStyle: "medium", timeStyle: "short"}) + " local)";
    t.after(local);
  }

  // Copy buttons: <button type="button" data-copy="text">.
  for (const b of document.querySelectorAll("button[data-copy]")) {
    b.addEventListener("click", async () => {
      const label = b.textContent;
      try {
        await navigator.clipboard.writeText(b.dataset.copy);
        b.textContent = "Copied";
      } catch {
        b.textContent = "Copy failed";
      }
      setTimeout(() => { b.textContent = label; }, 1500);
    });
  }

  // Forms that ask first: <form data-confirm="question">.
  for (const f of document.querySelectorAll("form[data-confirm]")) {
    f.addEventListener("submit", (e) => {
      if (!window.confirm(f.dataset.confirm)) e.preventDefault();
    });
  }
});

// Copy buttons rendered hidden (the pull command's): without the script,
// or where the page may not write the clipboard (plain HTTP to another
// host), the command stays plain text to select; show them otherwise.
document.addEventListener("DOMContentLoaded", () => {
  if (!navigator.clipboard) return;
  for (const b of document.querySelectorAll("button[data-copy][hidden]")) b.hidden = false;
});
