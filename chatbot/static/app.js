// The few behaviours htmx does not cover: Enter to send, a growing composer,
// keeping the newest message in view, copy buttons, Escape, and the sidebar
// drawer on small screens. No inline scripts: the page's CSP forbids them.
(function () {
  "use strict";

  document.documentElement.classList.add("js");

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

  function flash(button, text) {
    var label = button.firstChild;
    var before = label.textContent;
    label.textContent = text;
    setTimeout(function () { label.textContent = before; }, 1500);
  }

  function copy(button, text) {
    navigator.clipboard.writeText(text).then(
      function () { flash(button, "Copied"); },
      function () { flash(button, "Copy failed"); }
    );
  }

  // A header with the language and a copy button on each rendered code block.
  function decorateCodeBlocks(root) {
    root.querySelectorAll(".markdown .highlight:not([data-decorated])").forEach(function (block) {
      block.setAttribute("data-decorated", "");
      var language = "";
      block.classList.forEach(function (name) {
        if (name.indexOf("language-") === 0) language = name.slice("language-".length);
      });
      var header = document.createElement("div");
      header.className = "code-header";
      var label = document.createElement("span");
      label.textContent = language && language !== "text" ? language : "code";
      var button = document.createElement("button");
      button.type = "button";
      button.className = "copy-code";
      button.appendChild(document.createTextNode("Copy code"));
      header.appendChild(label);
      header.appendChild(button);
      block.insertBefore(header, block.firstChild);
    });
  }

  function closeSidebar() {
    var sidebar = document.getElementById("sidebar");
    var toggle = document.querySelector(".sidebar-toggle");
    if (sidebar && sidebar.classList.contains("open")) {
      sidebar.classList.remove("open");
      if (toggle) {
        toggle.setAttribute("aria-expanded", "false");
        toggle.focus();
      }
      return true;
    }
    return false;
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (target.id === "composer-text" && event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (target.value.trim() !== "") target.form.requestSubmit();
      return;
    }
    if (event.key === "Escape") {
      var form = target.closest && target.closest(".rename-form, .edit-form");
      if (form) {
        form.querySelector(".cancel").click();
      } else {
        closeSidebar();
      }
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
    // 4xx answers are swapped too (the inline error), so check the status itself.
    var form = event.detail.elt;
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

  // A reply refreshes the sidebar list, which would wipe search results the user is reading.
  document.addEventListener("htmx:sseBeforeMessage", function (event) {
    var search = document.querySelector('#sidebar input[type="search"]');
    var type = event.detail.type;
    if ((type === "sidebar" || type === "title") && search && search.value.trim() !== "") event.preventDefault();
  });

  // A streaming reply's Markdown arrives as patches of its rendered HTML (chatbot/render.py,
  // LiveMarkdown): "<keep>\n<commit>\n<html>" keeps the first <keep> characters of the tail's
  // HTML, appends <html>, then moves the first <commit> characters into the finished blocks.
  function applyRenderPatch(content, patch) {
    var first = patch.indexOf("\n");
    var second = patch.indexOf("\n", first + 1);
    var keep = Number(patch.slice(0, first));
    var commit = Number(patch.slice(first + 1, second));
    var tail = (content.liveTail || "").slice(0, keep) + patch.slice(second + 1);
    if (commit) {
      content.querySelector(".live-blocks").insertAdjacentHTML("beforeend", tail.slice(0, commit));
      tail = tail.slice(commit);
    }
    content.liveTail = tail;
    content.querySelector(".live-tail").innerHTML = tail;
  }

  document.addEventListener("htmx:sseBeforeMessage", function (event) {
    var message = event.detail;
    // A reply's stream resumes where it left off. The browser's own reconnection sends
    // Last-Event-ID; when htmx opens a new EventSource instead (after an error), the
    // stream's URL says the last event seen, so nothing is shown twice or skipped.
    var source = event.target.closest && event.target.closest("[sse-connect]");
    if (message.lastEventId && source) {
      var url = source.getAttribute("sse-connect").split("?")[0];
      source.setAttribute("sse-connect", url + "?after=" + encodeURIComponent(message.lastEventId));
    }
    if (message.type === "render") {
      event.preventDefault();
      applyRenderPatch(event.target, message.data);
    }
  });

  document.addEventListener("htmx:load", function (event) {
    decorateCodeBlocks(event.detail.elt);
  });
  document.addEventListener("htmx:afterSwap", scrollToEnd);
  document.addEventListener("htmx:sseMessage", scrollToEnd);
  document.addEventListener("DOMContentLoaded", function () {
    decorateCodeBlocks(document);
    scrollToEnd();
  });

  document.addEventListener("click", function (event) {
    var target = event.target;
    var codeButton = target.closest(".copy-code");
    if (codeButton) {
      copy(codeButton, codeButton.closest(".highlight").querySelector("code").innerText);
      return;
    }
    var replyButton = target.closest(".copy-reply");
    if (replyButton) {
      copy(replyButton, replyButton.closest(".bubble").querySelector(".content").innerText);
      return;
    }
    var sidebar = document.getElementById("sidebar");
    if (!sidebar) return;
    var toggle = target.closest(".sidebar-toggle");
    if (toggle) {
      var open = sidebar.classList.toggle("open");
      toggle.setAttribute("aria-expanded", String(open));
      if (open) sidebar.querySelector("a, input, button").focus();
    } else if (target.closest("#conversation-list .entry-link, .new-chat")) {
      closeSidebar();
    }
  });
})();
