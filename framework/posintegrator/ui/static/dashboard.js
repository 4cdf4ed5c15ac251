// posintegrator dashboard: refresh the live part of a page while it is open.
// The page works without this script; it only saves pressing reload. Updates pause while a
// form field is being used or a <details> is open inside the live part, and a button pauses
// them altogether (WCAG 2.2.2: moving content can be paused).
(function () {
  "use strict";
  var footer = document.getElementById("refresh");
  var state = document.getElementById("refresh-state");
  var toggle = document.getElementById("refresh-toggle");
  var live = document.getElementById("live");
  if (!footer || !state || !toggle || !live) { return; }  // this page does not update
  footer.hidden = false;
  var seconds = parseFloat(state.getAttribute("data-seconds")) || 5;
  var paused = false;
  var typing = false;
  toggle.addEventListener("click", function () {
    paused = !paused;
    toggle.textContent = paused ? "Resume updates" : "Pause updates";
    state.textContent = paused ? "Updates paused." : "Updates every " + Math.round(seconds) + " s.";
  });
  document.addEventListener("input", function () { typing = true; });
  function busy() {
    var focused = document.activeElement;
    if (focused && live.contains(focused) && /^(INPUT|SELECT|TEXTAREA|BUTTON|SUMMARY)$/.test(focused.tagName)) {
      return true;
    }
    return typing || live.querySelector("details[open]") !== null;
  }
  function refresh() {
    if (paused || busy() || document.hidden) { return; }
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Requested-With": "refresh" } })
      .then(function (response) {
        if (response.redirected && response.url.indexOf("/ui/login") !== -1) {
          window.location.reload();  // the session ended: show the sign-in page
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html === null || busy()) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        if (fresh) {
          live.innerHTML = fresh.innerHTML;
          state.textContent = "Updated " + new Date().toLocaleTimeString() + "; updates every " + Math.round(seconds) + " s.";
        }
      })
      .catch(function () {
        state.textContent = "Cannot reach the host; trying again in " + Math.round(seconds) + " s.";
      });
  }
  window.setInterval(refresh, seconds * 1000);
})();
