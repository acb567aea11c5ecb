// The gateway's frame page (protocol-spec/08-gateway.md#the-frame). The site runs in the
// sandboxed frame; this script loads it once the reader agreed and, when the frame is refused a navigation
// outside the site, shows the reader where the site tried to go. Nothing here opens
// anything unless the reader clicks.
(function () {
  "use strict";
  var frame = document.getElementById("umbra-site");
  var box = document.getElementById("umbra-leave");
  var shown = document.getElementById("umbra-leave-url");
  var consent = document.getElementById("umbra-consent");
  var wanted = "";
  // The site loads only once the reader agreed to read it in this mode (the gateway's
  // connection-hint warning); the answer is kept in this origin's storage, which belongs
  // to this site's frame page alone.
  var KEY = "umbra-read-here";
  function load() {
    consent.hidden = true;
    frame.hidden = false;
    frame.src = frame.getAttribute("data-src") + (location.hash || "");
  }
  var agreed = false;
  try { agreed = window.localStorage.getItem(KEY) === "yes"; } catch (e) { agreed = false; }
  if (agreed) {
    load();
  } else {
    frame.hidden = true;
    consent.hidden = false;
  }
  document.getElementById("umbra-consent-yes").addEventListener("click", function () {
    try { window.localStorage.setItem(KEY, "yes"); } catch (e) { /* asked again next time */ }
    load();
  });
  document.addEventListener("securitypolicyviolation", function (e) {
    var d = e.effectiveDirective || e.violatedDirective || "";
    if (d.indexOf("frame-src") !== 0) return;
    var url = String(e.blockedURI || "");
    if (!/^https?:\/\//i.test(url)) return;
    wanted = url;
    shown.textContent = url;
    box.hidden = false;
  });
  document.getElementById("umbra-leave-open").addEventListener("click", function () {
    if (wanted) window.open(wanted, "_blank", "noopener,noreferrer");
    box.hidden = true;
  });
  document.getElementById("umbra-leave-stay").addEventListener("click", function () {
    box.hidden = true;
  });
})();
