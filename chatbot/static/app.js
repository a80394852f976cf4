// The few behaviours htmx does not cover: Enter to send, a growing composer,
// keeping the newest message in view, and the sidebar toggle on small screens.
(function () {
  "use strict";

  function composerText() {
    return document.getElementById("composer-text");
  }

  function grow(textarea) {
    textarea.style.height = "auto";
    textarea.style.height = Math.min(textarea.scrollHeight, 240) + "px";
  }

  function scrollToEnd() {
    var messages = document.getElementById("messages");
    if (messages) messages.scrollTop = messages.scrollHeight;
  }

  document.addEventListener("keydown", function (event) {
    var textarea = event.target;
    if (textarea.id !== "composer-text") return;
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (textarea.value.trim() !== "") textarea.form.requestSubmit();
    }
  });

  document.addEventListener("input", function (event) {
    if (event.target.id === "composer-text") grow(event.target);
  });

  // A blank message never leaves the browser (the server refuses it too, for forms without JS).
  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.detail.elt;
    var textarea = composerText();
    if (form.id === "composer" && textarea && textarea.value.trim() === "") {
      event.preventDefault();
      document.getElementById("composer-error").innerHTML = '<p class="error">Type a message first.</p>';
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    // 4xx answers are swapped too (the inline error), so check the status itself.
    if (form.id !== "composer" || event.detail.xhr.status >= 300) return;
    var textarea = composerText();
    if (textarea) {
      textarea.value = "";
      grow(textarea);
      textarea.focus();
    }
    var error = document.getElementById("composer-error");
    if (error) error.textContent = "";
  });

  document.addEventListener("htmx:afterSwap", scrollToEnd);
  document.addEventListener("htmx:sseMessage", scrollToEnd);
  document.addEventListener("DOMContentLoaded", scrollToEnd);

  document.addEventListener("click", function (event) {
    var toggle = event.target.closest(".sidebar-toggle");
    var sidebar = document.getElementById("sidebar");
    if (!sidebar) return;
    if (toggle) {
      var open = sidebar.classList.toggle("open");
      toggle.setAttribute("aria-expanded", String(open));
    } else if (sidebar.classList.contains("open") && event.target.closest("#conversation-list a, .new-chat")) {
      sidebar.classList.remove("open");
      document.querySelector(".sidebar-toggle").setAttribute("aria-expanded", "false");
    }
  });
})();
