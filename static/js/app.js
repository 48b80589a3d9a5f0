// Tell htmx when the tab becomes visible again (a trigger filter would need eval, which the CSP forbids).
document.addEventListener("visibilitychange", function () {
  if (document.visibilityState === "visible") {
    document.body.dispatchEvent(new Event("page-visible"));
  }
});

// A failed htmx request is shown where the person acted (the error's title, message and what to
// do), and a request that never reached the server raises a toast. One handler for every page.
(function () {
  var shown = new WeakMap();

  function errorFrom(xhr) {
    var type = xhr.getResponseHeader("Content-Type") || "";
    if (type.indexOf("json") !== -1) {
      try {
        var body = JSON.parse(xhr.responseText);
        var details = body.details || {};
        return { title: body.error, message: details.message || "", hint: "" };
      } catch (e) { /* fall through to the generic text */ }
    }
    if (type.indexOf("html") !== -1 && xhr.responseText) {
      var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var title = doc.querySelector("[data-error-title]");
      if (title) {
        var message = doc.querySelector("[data-error-message]");
        var hint = doc.querySelector("[data-error-hint]");
        return {
          title: title.textContent.trim(),
          message: message ? message.textContent.trim() : "",
          hint: hint ? hint.textContent.trim() : "",
        };
      }
    }
    return {
      title: "Request failed (HTTP " + xhr.status + ")",
      message: xhr.statusText || "",
      hint: "Reload the page and try again.",
    };
  }

  function render(error) {
    var box = document.createElement("div");
    box.className = "flash error htmx-error";
    box.setAttribute("role", "alert");
    var strong = document.createElement("strong");
    strong.textContent = error.title;
    box.appendChild(strong);
    [error.message, error.hint].forEach(function (text, i) {
      if (text) {
        var span = document.createElement("span");
        span.className = i ? "hint" : "message";
        span.textContent = " " + text;
        box.appendChild(span);
      }
    });
    return box;
  }

  function clear(elt) {
    var old = shown.get(elt);
    if (old) { old.remove(); shown.delete(elt); }
  }

  function showNear(elt, error) {
    var place = (elt.closest && elt.closest("form")) || elt;
    clear(place);
    var box = render(error);
    if (place.tagName === "FORM") { place.appendChild(box); } else { place.insertAdjacentElement("afterend", box); }
    shown.set(place, box);
  }

  function toast(text) {
    var region = document.getElementById("toasts");
    if (!region) { return; }
    region.replaceChildren();
    var item = document.createElement("div");
    item.className = "toast error";
    item.setAttribute("role", "alert");
    var words = document.createElement("span");
    words.textContent = text;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "link";
    close.textContent = "Dismiss";
    close.addEventListener("click", function () { item.remove(); });
    item.append(words, " ", close);
    region.appendChild(item);
  }

  document.addEventListener("htmx:responseError", function (evt) {
    showNear(evt.detail.elt, errorFrom(evt.detail.xhr));
  });
  document.addEventListener("htmx:sendError", function () {
    toast("Could not reach Routiq Admin: check your connection (or that the server is running), then try again.");
  });
  document.addEventListener("htmx:afterRequest", function (evt) {
    if (evt.detail.successful) {
      var elt = evt.detail.elt;
      clear((elt.closest && elt.closest("form")) || elt);
    }
  });
  // A filter form's marks belong to the values it sent last.
  document.addEventListener("htmx:beforeRequest", function (evt) {
    var form = evt.detail.elt.closest && evt.detail.elt.closest("form.filters");
    if (!form) { return; }
    form.querySelectorAll(".field-error").forEach(function (p) { p.remove(); });
    form.querySelectorAll(".has-error").forEach(function (f) { f.classList.remove("has-error"); });
    form.querySelectorAll("[aria-invalid]").forEach(function (f) {
      f.removeAttribute("aria-invalid");
      f.removeAttribute("aria-describedby");
    });
  });
})();
