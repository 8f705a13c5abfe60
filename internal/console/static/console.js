// credvault web console: the only script of the console (no inline script;
// the Content-Security-Policy forbids it). It reveals a payload on an
// explicit click through a POST made by fetch (never a URL), hides it again
// after 30 seconds and copies to the clipboard.
"use strict";

(function () {

  function csrf() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute("content") : "";
  }

  function copyText(el, status) {
    var text = el.textContent;
    var done = function () { if (status) { status.textContent = "Copied."; } };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {
        if (status) { status.textContent = "Copy failed: select the text and copy it."; }
      });
      return;
    }
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    try { document.execCommand("copy"); done(); } catch (e) { /* selected for manual copy */ }
    sel.removeAllRanges();
  }

  function setupReveal(btn) {
    var box = document.getElementById("secret");
    var value = document.getElementById("secret-value");
    var status = document.getElementById("secret-status");
    var errBox = document.getElementById("reveal-error");
    var timer = null;
    function hide() {
      value.textContent = "";
      box.hidden = true;
      btn.hidden = false;
      if (timer) { clearInterval(timer); timer = null; }
      btn.focus();
    }
    btn.addEventListener("click", function () {
      errBox.hidden = true;
      btn.disabled = true;
      fetch(btn.getAttribute("data-reveal"), {
        method: "POST",
        credentials: "same-origin",
        cache: "no-store",
        headers: { "X-CSRF-Token": csrf(), "Accept": "application/json" }
      }).then(function (resp) {
        return resp.json().then(function (body) { return { ok: resp.ok, body: body }; });
      }).then(function (res) {
        btn.disabled = false;
        if (!res.ok) {
          errBox.textContent = res.body.error || "The payload could not be revealed.";
          errBox.hidden = false;
          return;
        }
        value.textContent = res.body.payload;
        box.hidden = false;
        btn.hidden = true;
        var left = parseInt(btn.getAttribute("data-hide-after"), 10) || 30;
        status.textContent = "Hides in " + left + " s.";
        timer = setInterval(function () {
          left -= 1;
          if (left <= 0) { hide(); status.textContent = ""; return; }
          status.textContent = "Hides in " + left + " s.";
        }, 1000);
        value.focus();
      }).catch(function () {
        btn.disabled = false;
        errBox.textContent = "The vault could not be reached.";
        errBox.hidden = false;
      });
    });
    document.getElementById("hide").addEventListener("click", hide);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var reveal = document.querySelector("[data-reveal]");
    if (reveal) { setupReveal(reveal); }
    document.querySelectorAll("[data-copy]").forEach(function (b) {
      b.addEventListener("click", function () {
        var status = b.parentNode.querySelector('[role="status"]');
        copyText(document.getElementById(b.getAttribute("data-copy")), status);
      });
    });
  });
})();
