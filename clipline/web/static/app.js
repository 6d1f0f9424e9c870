// clipline operations page: timeline widths, keyboard moves on the strip, live updates of a running
// job, confirmation of job actions, the submit form's checks. No framework, no build step.
// Everything shown comes from the server already escaped; this script only moves that HTML around.
"use strict";

(function () {
  var POLL_MS = 1000;

  // Slots are drawn to scale: each block grows in proportion to its length in ms.
  function scaleStrip(root) {
    root.querySelectorAll(".slot[data-ms]").forEach(function (li) {
      li.style.flexGrow = String(Math.max(1, Number(li.dataset.ms) || 1));
    });
  }

  // One tab stop for the whole strip; arrow keys, Home and End move between lines (roving tabindex).
  function focusSlot(slot) {
    var strip = slot.parentElement;
    strip.querySelectorAll(".slot").forEach(function (li) { li.tabIndex = -1; });
    slot.tabIndex = 0;
    slot.focus();
  }

  document.addEventListener("keydown", function (event) {
    var slot = event.target.closest && event.target.closest(".slot");
    if (!slot) return;
    var slots = Array.prototype.slice.call(slot.parentElement.querySelectorAll(".slot"));
    var at = slots.indexOf(slot), to = null;
    if (event.key === "ArrowRight" || event.key === "ArrowDown") to = Math.min(slots.length - 1, at + 1);
    else if (event.key === "ArrowLeft" || event.key === "ArrowUp") to = Math.max(0, at - 1);
    else if (event.key === "Home") to = 0;
    else if (event.key === "End") to = slots.length - 1;
    else if (event.key === "Escape") { slot.blur(); return; }
    if (to === null) return;
    event.preventDefault();
    focusSlot(slots[to]);
  });

  // Live updates: the server renders the job's changing part; it replaces the old one while the
  // job runs. Focus stays on the element that had it (same id). A 401 means the session ended.
  function startLive(live) {
    var status = document.getElementById("live-status");
    // Screen readers hear the status when it changes (the progress bar speaks for itself).
    var last = null, announced = status ? status.textContent : null;

    function apply(html) {
      if (html === last) return;
      last = html;
      var active = document.activeElement && document.activeElement.id;
      var activeSlot = active && active.indexOf("slot-") === 0;
      live.innerHTML = html;
      scaleStrip(live);
      if (active) {
        var again = document.getElementById(active);
        if (again) {
          if (activeSlot) focusSlot(again); else again.focus();
        }
      }
      var body = live.querySelector(".live-body");
      if (body && status && body.dataset.announce !== announced) {
        announced = body.dataset.announce;
        status.textContent = announced;
      }
      if (body) live.dataset.final = body.dataset.final;
    }

    function poll() {
      fetch(live.dataset.url, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (res) {
          if (res.status === 401) {
            var next = window.location.pathname + window.location.search;
            window.location.assign("/login?why=expired&next=" + encodeURIComponent(next));
            return null;
          }
          if (res.status === 404) { live.dataset.final = "yes"; return null; } // the job is gone
          return res.ok ? res.text() : null;
        })
        .then(function (html) {
          if (html !== null) apply(html);
        })
        .catch(function () { /* the server is restarting: the next poll tries again */ })
        .then(function () {
          if (live.dataset.final !== "yes") window.setTimeout(poll, POLL_MS);
        });
    }

    if (live.dataset.final !== "yes") window.setTimeout(poll, POLL_MS);
  }

  // Cancel and Retry ask first. Without this script the server asks on a page of its own.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.confirm !== undefined) {
      if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); return; }
      form.querySelector("input[name=confirmed]").value = "yes";
    }
    if (form.id === "submit-form") checkSize(form, event);
  });

  function checkSize(form, event) {
    var limit = Number(form.dataset.limit) || 0;
    var text = form.querySelector("#request").value;
    var file = form.querySelector("#upload").files[0];
    var size = file ? file.size : new TextEncoder().encode(text).length;
    var box = document.getElementById("client-error");
    if (limit && size > limit) {
      event.preventDefault();
      box.textContent = form.dataset.big;
      box.hidden = false;
    } else {
      box.hidden = true;
    }
  }

  // A problem's link selects the field it names in the text box.
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-start]");
    if (!link) return;
    var box = document.getElementById("request");
    if (!box) return;
    event.preventDefault();
    box.focus();
    box.setSelectionRange(Number(link.dataset.start), Number(link.dataset.end));
  });

  document.addEventListener("DOMContentLoaded", function () {
    scaleStrip(document);
    var live = document.getElementById("live");
    if (live) startLive(live);
    var problems = document.getElementById("problems");
    if (problems) problems.focus();
  });
})();
