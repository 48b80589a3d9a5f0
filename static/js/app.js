// Tell htmx when the tab becomes visible again (a trigger filter would need eval, which the CSP forbids).
document.addEventListener("visibilitychange", function () {
  if (document.visibilityState === "visible") {
    document.body.dispatchEvent(new Event("page-visible"));
  }
});
