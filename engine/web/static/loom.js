/* Loom's small enhancements: tabs, toasts, row removal, select-all, kanban drag and drop.
   Every screen works without this file; it only makes them quicker. No inline code anywhere (strict CSP). */
(function () {
  "use strict";
  var root = document.documentElement;
  root.classList.remove("nojs");
  root.classList.add("js");

  function csrf() {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"] || ""; } catch (e) { return ""; }
  }

  function toast(text, kind) {
    var box = document.getElementById("toasts");
    if (!box || !text) { return; }
    var el = document.createElement("div");
    el.className = "toast" + (kind ? " " + kind : "");
    el.textContent = text;
    box.appendChild(el);
    fade(el);
  }

  function fade(el) {
    setTimeout(function () {
      el.classList.add("gone");
      setTimeout(function () { el.remove(); }, 400);
    }, 5000);
  }

  function activate(nav, id) {
    nav.querySelectorAll("a").forEach(function (a) {
      var on = a.getAttribute("href") === "#" + id;
      a.classList.toggle("active", on);
      a.setAttribute("aria-selected", on ? "true" : "false");
      var panel = document.getElementById(a.getAttribute("href").slice(1));
      if (panel) { panel.hidden = !on; }
    });
  }

  function tabs(scope) {
    scope.querySelectorAll("[data-tabs]").forEach(function (nav) {
      if (nav.dataset.ready) { return; }
      nav.dataset.ready = "1";
      nav.setAttribute("role", "tablist");
      var links = Array.prototype.slice.call(nav.querySelectorAll("a"));
      if (!links.length) { return; }
      var wanted = links[0].getAttribute("href").slice(1);
      links.forEach(function (a) {
        var panel = document.getElementById(a.getAttribute("href").slice(1));
        if (panel && panel.querySelector(".has-error")) { wanted = panel.id; }
        a.setAttribute("role", "tab");
        a.addEventListener("click", function (e) { e.preventDefault(); activate(nav, a.getAttribute("href").slice(1)); });
      });
      if (location.hash && nav.querySelector('a[href="' + location.hash + '"]') && !document.querySelector(".has-error")) {
        wanted = location.hash.slice(1);
      }
      activate(nav, wanted);
    });
  }

  function init(scope) {
    tabs(scope);
    scope.querySelectorAll(".toast").forEach(fade);
  }

  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:load", function (e) { init(e.target); });
  document.addEventListener("toast", function (e) { toast(e.detail && e.detail.value); });
  document.addEventListener("htmx:sendError", function () { toast("Network error: not saved", "error"); });

  /* Live form state arrives while the user types: the field being typed in keeps its element (and so its text and
     caret); only its visibility, classes and required flag follow the server's answer. */
  document.addEventListener("htmx:oobBeforeSwap", function (e) {
    var target = e.detail.target, active = document.activeElement;
    var fresh = e.detail.fragment && e.detail.fragment.firstElementChild;
    if (!fresh || !active || active === document.body || !target.contains(active) || fresh.id !== target.id) { return; }
    e.detail.shouldSwap = false;
    target.hidden = fresh.hidden;
    target.className = fresh.className;
    var control = fresh.querySelector("#" + CSS.escape(active.id || "-"));
    if (control) {
      active.required = control.required;
      active.toggleAttribute("aria-required", control.hasAttribute("aria-required"));
    }
  });

  document.addEventListener("click", function (e) {
    var remove = e.target.closest("[data-remove-row]");
    if (remove) {
      var body = remove.closest(".form-body");
      remove.closest("tr").remove();
      if (body) { body.dispatchEvent(new Event("change", { bubbles: true })); }
    }
    if (e.target.closest("[data-print]")) { window.print(); }
  });

  document.addEventListener("change", function (e) {
    if (e.target.matches("[data-check-all]")) {
      document.querySelectorAll('input[name="ids"]').forEach(function (box) { box.checked = e.target.checked; });
    }
  });

  /* Kanban: drag a card to another lane; the server decides (409/422 put it back with the message). */
  var dragged = null;
  var from = null;
  document.addEventListener("dragstart", function (e) {
    var card = e.target.closest && e.target.closest(".kcard[data-move]");
    if (!card) { return; }
    dragged = card;
    from = card.parentNode;
    e.dataTransfer.effectAllowed = "move";
    e.dataTransfer.setData("text/plain", card.dataset.id);
    card.classList.add("dragging");
  });
  document.addEventListener("dragend", function () {
    if (dragged) { dragged.classList.remove("dragging"); }
    document.querySelectorAll(".lane.over").forEach(function (l) { l.classList.remove("over"); });
  });
  document.addEventListener("dragover", function (e) {
    var lane = dragged && e.target.closest && e.target.closest("[data-movable] .lane");
    if (lane) { e.preventDefault(); lane.classList.add("over"); }
  });
  document.addEventListener("dragleave", function (e) {
    var lane = e.target.closest && e.target.closest(".lane");
    if (lane && !lane.contains(e.relatedTarget)) { lane.classList.remove("over"); }
  });
  document.addEventListener("drop", function (e) {
    var lane = dragged && e.target.closest && e.target.closest("[data-movable] .lane");
    if (!lane) { return; }
    e.preventDefault();
    lane.classList.remove("over");
    var card = dragged, back = from, target = lane.querySelector(".cards");
    dragged = null;
    if (!target || target === back) { return; }
    target.prepend(card);
    var body = new URLSearchParams({ value: lane.dataset.lane, version: card.dataset.version });
    fetch(card.dataset.move, {
      method: "POST", credentials: "same-origin", body: body,
      headers: { "X-CSRF-Token": csrf(), "Accept": "application/json" }
    }).then(function (r) {
      return r.json().then(function (data) { return { ok: r.ok, data: data }; });
    }).then(function (res) {
      if (res.ok) {
        card.dataset.version = res.data.version;
        var select = card.querySelector('select[name="value"]');
        if (select) { select.value = lane.dataset.lane; }
        toast(res.data.message);
      } else {
        back.prepend(card);
        toast((res.data.error && res.data.error.message) || "Not moved", "error");
      }
    }).catch(function () { back.prepend(card); toast("Network error: not moved", "error"); });
  });
}());
