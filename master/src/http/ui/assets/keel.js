// Keel's web UI: live updates. The master sends a notice on /ui/events
// whenever an agent, framework or task changes; this script fetches the
// page's live region again (the body's data-fragment URL) and swaps it in.
// Notices that come while a fetch runs are folded into one more fetch.
"use strict";

(function () {
  const body = document.body;
  const fragment = body && body.dataset.fragment;
  const status = document.getElementById("live-state");
  if (!fragment || !window.EventSource) {
    return;
  }
  let running = false;
  let again = false;
  let updates = 0;

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  async function refresh() {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        const resp = await fetch(fragment, { credentials: "same-origin" });
        if (!resp.ok) {
          say("update failed: " + resp.status);
          break;
        }
        const html = await resp.text();
        const live = document.getElementById("live");
        if (live) {
          live.innerHTML = html;
        }
        updates += 1;
        body.dataset.updates = String(updates);
      } while (again);
    } catch (e) {
      say("update failed: " + e);
    } finally {
      running = false;
    }
  }

  // The last few notices, newest first, as text (never markup).
  function remember(data) {
    const list = document.getElementById("recent");
    let notice;
    try {
      notice = JSON.parse(data);
    } catch (e) {
      return;
    }
    if (!list || !notice || !notice.kind) {
      return;
    }
    const item = document.createElement("li");
    const when = new Date().toLocaleTimeString();
    item.textContent = when + " " + notice.kind + " " + notice.id +
      (notice.state ? " " + notice.state : "");
    list.insertBefore(item, list.firstChild);
    while (list.children.length > 10) {
      list.removeChild(list.lastChild);
    }
  }

  const events = new EventSource("/ui/events");
  events.onopen = function () {
    say("live");
    body.dataset.live = "open";
  };
  events.onmessage = function (event) {
    remember(event.data);
    refresh();
  };
  events.onerror = function () {
    say("reconnecting…");
    body.dataset.live = "reconnecting";
  };
})();
