// pglane dashboard: live refresh (polling at the interval chosen in the header, paused
// while the tab is hidden or while the operator is selecting or typing), select-all,
// the theme toggle, and "/" to jump to the first filter. No inline script: the page's
// Content-Security-Policy allows scripts from the dashboard's own path only.
(function () {
  "use strict";
  var root = document.documentElement;
  var THEMES = ["auto", "light", "dark"];
  function applyTheme(t) {
    if (t === "light" || t === "dark") root.dataset.theme = t; else delete root.dataset.theme;
  }
  applyTheme(localStorage.getItem("pglane.theme") || "auto");

  function busy() {
    var main = document.getElementById("live");
    if (!main) return true;
    if (main.querySelector("input[type=checkbox]:checked")) return true;
    var a = document.activeElement;
    return !!(a && main.contains(a) && /^(INPUT|TEXTAREA|SELECT)$/.test(a.tagName));
  }

  var timer = null;
  function refresh() {
    if (document.hidden || busy()) return;
    fetch(location.href, { headers: { "X-Pglane-Refresh": "1" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html || busy()) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var next = doc.getElementById("live");
        var main = document.getElementById("live");
        if (next && main) { main.replaceWith(next); wire(); }
      })
      .catch(function () {});
  }
  function schedule(seconds) {
    if (timer) clearInterval(timer);
    timer = seconds > 0 ? setInterval(refresh, seconds * 1000) : null;
  }

  function wire() {
    var all = document.getElementById("select-all");
    if (all) all.addEventListener("change", function () {
      document.querySelectorAll("table.jobs tbody input[type=checkbox]").forEach(function (c) { c.checked = all.checked; });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var sel = document.getElementById("refresh");
    var saved = localStorage.getItem("pglane.refresh") || "5";
    if (sel) {
      sel.value = saved;
      sel.addEventListener("change", function () {
        localStorage.setItem("pglane.refresh", sel.value);
        schedule(Number(sel.value));
      });
    }
    schedule(Number(saved));
    var theme = document.getElementById("theme");
    if (theme) theme.addEventListener("click", function () {
      var now = localStorage.getItem("pglane.theme") || "auto";
      var next = THEMES[(THEMES.indexOf(now) + 1) % THEMES.length];
      localStorage.setItem("pglane.theme", next);
      applyTheme(next);
      theme.title = "Theme: " + next;
    });
    wire();
  });
  document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });
  document.addEventListener("keydown", function (e) {
    if (e.key === "/" && !/^(INPUT|TEXTAREA|SELECT)$/.test((document.activeElement || {}).tagName)) {
      var f = document.querySelector("form.filters input, form.filters select");
      if (f) { e.preventDefault(); f.focus(); }
    }
  });
})();
