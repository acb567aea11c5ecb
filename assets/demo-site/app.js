// The demo site's checks, run in the reader's browser.
"use strict";

function show(id, ok, text) {
  const el = document.getElementById(id);
  el.textContent = text;
  el.className = ok ? "ok" : "bad";
}

// Storage: this origin is this site alone, so what it stores no other site can read.
try {
  localStorage.setItem("umbra-demo-secret", "kept by " + location.host.split(".")[0].slice(0, 8));
  show("storage-check", true, "this site stored a value only its own pages can read");
} catch (e) {
  show("storage-check", false, "storage unavailable: " + e);
}

// Clearnet: the gateway's Content-Security-Policy stops any request that leaves this site.
let violated = false;
document.addEventListener("securitypolicyviolation", () => { violated = true; });
fetch("http://example.com/umbra-leak-test", { mode: "no-cors" })
  .then(() => show("net-check", false, "a clearnet request went out"))
  .catch(() => show("net-check", true, violated
    ? "clearnet request blocked by the content security policy"
    : "clearnet request blocked"));
