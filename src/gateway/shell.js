// The gateway's frame page (protocol-spec/08-gateway.md#the-frame). The site runs in the
// sandboxed frame; this script only loads it and, when the frame is refused a navigation
// outside the site, shows the reader where the site tried to go. Nothing here opens
// anything unless the reader clicks.
(function () {
  "use strict";
  var frame = document.getElementById("umbra-site");
  var box = document.getElementById("umbra-leave");
  var shown = document.getElementById("umbra-leave-url");
  var wanted = "";
  frame.src = frame.getAttribute("data-src") + (location.hash || "");
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
