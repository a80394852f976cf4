// The few behaviours htmx does not cover: Enter to send, a growing composer,
// the files to attach (chosen, pasted, dropped, previewed), following a reply
// while the reader is at the end, copy buttons, Escape, the conversation menu,
// and the sidebar drawer on small screens. No inline scripts: the page's CSP
// forbids them.
(function () {
  "use strict";

  function composerText() {
    return document.getElementById("composer-text");
  }

  function grow(textarea) {
    textarea.style.height = "auto";
    textarea.style.height = Math.min(textarea.scrollHeight, 240) + "px";
  }

  // Scrolling that respects the reader. The pane follows new text only while the reader is at its end;
  // scrolled up, nothing moves and "Jump to latest" appears. Opening a conversation starts at its end.
  // Which swaps change the messages does not matter here: any change inside #messages is watched.
  var NEAR_END = 24; // pixels: rounding, and a last line half in view, still count as the end
  var following = true;

  function messagesPane() {
    return document.getElementById("messages");
  }

  function atEnd(messages) {
    return messages.scrollHeight - messages.scrollTop - messages.clientHeight <= NEAR_END;
  }

  function showJump(show) {
    var button = document.getElementById("jump-latest");
    if (button && button.hidden === show) button.hidden = !show;
  }

  function scrollToEnd() {
    var messages = messagesPane();
    following = true;
    showJump(false);
    if (messages) messages.scrollTop = messages.scrollHeight;
  }

  function messagesChanged() {
    var messages = messagesPane();
    if (!messages) return;
    if (following) messages.scrollTop = messages.scrollHeight;
    else showJump(!atEnd(messages));
  }

  // Scroll events do not bubble: listen in the capture phase, for whichever #messages is on screen.
  document.addEventListener("scroll", function (event) {
    if (event.target.id !== "messages") return;
    following = atEnd(event.target);
    showJump(!following);
  }, true);

  // A swap that removes the focused control (Stop, Retry, Regenerate, a rename's Save) would drop the focus
  // to the start of the page: give it to what replaced that message or sidebar entry, else the composer.
  var lastFocused = null;
  document.addEventListener("focusin", function (event) { lastFocused = event.target; });

  function keepFocus() {
    var lost = lastFocused;
    if (!lost || lost.isConnected || (document.activeElement && document.activeElement !== document.body)) return;
    lastFocused = null;
    var holder = lost.closest("article.message[id], li[data-conversation-id]");
    var replacement = null;
    if (holder && holder.id) {
      replacement = document.getElementById(holder.id);
    } else if (holder) {
      replacement = document.querySelector('li[data-conversation-id="' + holder.getAttribute("data-conversation-id") + '"]');
    }
    var control = replacement && (replacement.querySelector(".regenerate, .stop, .entry-link") ||
      replacement.querySelector("button, a[href], textarea"));
    control = control || composerText();
    if (control) control.focus({ preventScroll: true });
  }

  new MutationObserver(function (records) {
    keepFocus();
    for (var i = 0; i < records.length; i++) {
      var node = records[i].target;
      if (node.nodeType !== 1) node = node.parentNode;
      if (node && node.closest && node.closest("#messages")) {
        messagesChanged();
        return;
      }
    }
  }).observe(document.documentElement, { childList: true, characterData: true, subtree: true });

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
      var menu = document.querySelector("details.menu[open]");
      if (form) {
        form.querySelector(".cancel").click();
      } else if (menu) {
        menu.open = false;
        menu.querySelector("summary").focus();
      } else {
        closeSidebar();
      }
    }
  });

  document.addEventListener("input", function (event) {
    if (event.target.id === "composer-text") grow(event.target);
  });

  // A send. htmx reads the form when the request starts, so what is posted is what the composer showed then;
  // while it is in flight its files cannot be removed (their previews stay, their buttons disabled), and text
  // and files may be added for the next message. Only an answer that is the sent message (it names the reply's
  // stream) clears the composer, and only of what was sent; any other end (no connection, an error the server
  // did not put in the composer) keeps everything and says the message was not sent.
  var sending = null; // { xhr, the form, its text and files as sent }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.detail.elt, text = composerText(), input = fileInput();
    if (form.id !== "composer") return;
    if (text.value.trim() === "") { // a blank message never leaves the browser (the server refuses it too)
      event.preventDefault();
      return say("Type a message first.");
    }
    scrollToEnd(); // whoever sends wants to see the message and its reply
    sending = { xhr: event.detail.xhr, form: form, text: text.value, files: input.held || [] };
    showPreviews(input);
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var detail = event.detail;
    // X-Reply-Stream comes with the answer of a send that went through, and with no other.
    if (sending && detail.xhr === sending.xhr && !detail.xhr.getResponseHeader("X-Reply-Stream") &&
      detail.target.id !== "composer-error") {
      detail.shouldSwap = false; // an error page is no message: it goes nowhere near #messages
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var sent = sending, xhr = event.detail.xhr;
    if (!sent || xhr !== sent.xhr) return;
    // The sent form's own fields: a first message's answer has replaced that composer with the conversation's.
    var typed = sent.form.elements.text.value, old = sent.form.elements.files, text = composerText();
    sending = null;
    if (!xhr.getResponseHeader("X-Reply-Stream")) {
      showPreviews(old);
      if (!xhr.status || event.detail.target.id !== "composer-error") {
        say("Your message was not sent (" + (xhr.status ? "error " + xhr.status : "nothing reached the server") +
          "). Try again.");
      }
      return;
    }
    text.value = typed.indexOf(sent.text) === 0 ? typed.slice(sent.text.length).trimStart() : typed; // typed since
    grow(text);
    text.focus();
    setFiles(fileInput(), (old.held || []).filter(function (file) { return sent.files.indexOf(file) < 0; }));
  });

  // Attachments. The file input is the one record of the files to send: what it holds is what is posted
  // (htmx sends the form as multipart, as the browser does) and what the previews show. Files chosen, pasted
  // or dropped are added to it through a DataTransfer, a remove button takes one out, and the caps in its
  // data attributes (the server's) refuse a file before anything is uploaded. Names go in as text only.
  function fileInput() {
    return document.getElementById("composer-files");
  }

  function size(bytes) {
    return bytes == 1 ? "1 byte" : bytes < 1024 ? bytes + " bytes" : bytes < 1048576 ?
      Math.ceil(bytes / 1024) + " KB" : +(bytes / 1048576).toFixed(1) + " MB";
  }

  function say(text) {
    var paragraph = document.createElement("p");
    paragraph.className = "error";
    paragraph.textContent = text;
    document.getElementById("composer-error").replaceChildren(text ? paragraph : "");
  }

  function element(tag, className, text) {
    var made = document.createElement(tag);
    made.className = className;
    made.textContent = text || "";
    return made;
  }

  function isImage(file) {
    return /^image\/(?!svg)/.test(file.type); // an SVG is text (its markup), shown and sent as such
  }

  // An image for a model that cannot see images (those that can have data-vision): the server refuses it.
  function visionProblem(input) {
    var select = document.getElementById("composer-model");
    var option = select && select.selectedOptions[0];
    if (!option || option.hasAttribute("data-vision") || !(input.held || []).some(isImage)) return "";
    var seeing = Array.from(select.querySelectorAll("[data-vision]:enabled"), function (seer) { return seer.value; });
    return option.value + " cannot see images. " + (seeing.length ? "Pick one that can (" + seeing.join(", ") +
      ")" : "No model here can") + ", or send the message without the image.";
  }

  function showPreviews(input) {
    var list = document.getElementById("composer-previews");
    list.replaceChildren();
    (input.held || []).forEach(function (file, index) {
      var item = element("li", "preview"), text = element("span", "preview-text");
      var remove = element("button", "preview-remove", "\u00d7");
      remove.disabled = !!sending && sending.files.indexOf(file) >= 0; // being posted
      if (isImage(file)) {
        var image = item.appendChild(element("img", ""));
        image.onload = image.onerror = function () { URL.revokeObjectURL(image.src); }; // shown, it is not needed
        image.src = URL.createObjectURL(file);
        image.alt = "";
      }
      text.append(element("span", "preview-name", file.name), element("span", "preview-size", size(file.size)));
      text.title = file.name;
      remove.type = "button";
      remove.value = index;
      remove.setAttribute("aria-label", "Remove " + file.name);
      item.append(text, remove);
      list.appendChild(item);
    });
  }

  function setFiles(input, files, refusal) {
    var transfer = new DataTransfer();
    files.forEach(function (file) { transfer.items.add(file); });
    input.files = transfer.files;
    input.held = files;
    showPreviews(input);
    say(refusal || visionProblem(input));
  }

  function addFiles(input, added) {
    var files = (input.held || []).slice(), caps = input.dataset, refusal = "";
    Array.from(added).forEach(function (file) {
      var total = files.reduce(function (sum, held) { return sum + held.size; }, file.size);
      if (!file.size) {
        refusal = file.name + " is empty."; // as the server says
      } else if (file.size > Number(caps.fileBytes)) {
        refusal = file.name + " is " + size(file.size) + "; a file may be at most " + size(caps.fileBytes) + ".";
      } else if (files.length >= Number(caps.messageFiles)) {
        refusal = "A message may carry " + caps.messageFiles + " files at most.";
      } else if (total > Number(caps.messageBytes)) {
        refusal = "These files come to " + size(total) + "; a message may carry " + size(caps.messageBytes) + ".";
      } else {
        files.push(file);
      }
    });
    setFiles(input, files, refusal);
  }

  // The chooser replaces the input's files: what was held before is kept, and the chosen ones added.
  document.addEventListener("change", function (event) {
    if (event.target.id === "composer-files") addFiles(event.target, event.target.files);
    if (event.target.id === "composer-model") say(visionProblem(fileInput()));
  });

  document.addEventListener("paste", function (event) {
    var data = event.clipboardData;
    if (!data || !data.files.length || !event.target.closest("#composer")) return;
    if (data.types.indexOf("text/plain") < 0) event.preventDefault(); // nothing else to paste
    addFiles(fileInput(), data.files);
  });

  // Files dropped on the composer are attached; dropped anywhere else, nothing happens (the browser would
  // open the file in place of the page, and the text typed would be lost).
  ["dragenter", "dragover", "dragleave", "drop"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      var transfer = event.dataTransfer, composer = event.target.closest && event.target.closest("#composer");
      if (!transfer || transfer.types.indexOf("Files") < 0) return;
      event.preventDefault();
      transfer.dropEffect = composer ? "copy" : "none";
      if (!composer) return;
      composer.classList.toggle("dropping", type === "dragenter" || type === "dragover");
      if (type === "drop") addFiles(fileInput(), transfer.files);
    });
  });

  function attachments(target) {
    var input = fileInput(), remove = target.closest(".preview-remove"), index = Number(remove && remove.value);
    if (target.closest(".attach-button")) input.click();
    if (!remove) return Boolean(target.closest(".attach-button"));
    setFiles(input, input.held.filter(function (file, at) { return at !== index; }));
    // The focus stays among the files (on the next one's button), or goes back to the button that adds them.
    var buttons = document.querySelectorAll(".preview-remove");
    (buttons[Math.min(index, buttons.length - 1)] || document.querySelector(".attach-button")).focus();
    return true;
  }

  // A streaming reply's Markdown arrives as patches of its rendered HTML (chatbot/render.py,
  // LiveMarkdown): "<keep>\n<commit>\n<html>" keeps the first <keep> UTF-16 code units (a string's own
  // unit here) of the tail's HTML, appends <html>, then moves the first <commit> units into the
  // finished blocks. Defence in depth: the HTML is parsed where nothing loads or runs (a template) and
  // enters the page only if it holds nothing the server's sanitiser forbids (its tags and attributes,
  // render.py; class values are not checked here). A patch that does not fit is refused, and so is
  // every later one: the bubble stays as it was until the finished message replaces it.
  var ALLOWED_TAGS = " a abbr b blockquote br code del div em h1 h2 h3 h4 h5 h6 hr i li ol p pre span " +
    "strong sub sup table tbody td th thead tr ul ";
  var ALLOWED_ATTRIBUTES = { a: " href title rel ", abbr: " title ", code: " class ", div: " class ",
    span: " class ", th: " align ", td: " align ", ol: " start " };

  // The rule for a link's href, the same in render.py (allowed_href), in the same words: read the URL as a
  // browser does (ASCII tabs and line breaks dropped anywhere, then C0 controls and spaces dropped at either
  // end); it is kept when it does not start with a scheme (a letter, then letters, digits, "+", "." or "-",
  // then ":"), or when its scheme is http, https or mailto, in any case. So "10:30" is a relative URL, and kept.
  function allowedHref(value) {
    var url = value.replace(/[\t\n\r]/g, "").replace(/^[\x00-\x20]+|[\x00-\x20]+$/g, "");
    var scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url);
    return !scheme || /^(https?|mailto)$/i.test(scheme[1]);
  }

  function allowedHTML(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    var elements = template.content.querySelectorAll("*");
    for (var i = 0; i < elements.length; i++) {
      var name = elements[i].localName, attributes = elements[i].attributes;
      if (ALLOWED_TAGS.indexOf(" " + name + " ") < 0) return null;
      for (var j = 0; j < attributes.length; j++) {
        if ((ALLOWED_ATTRIBUTES[name] || "").indexOf(" " + attributes[j].name + " ") < 0) return null;
        if (attributes[j].name === "href" && !allowedHref(attributes[j].value)) return null;
      }
    }
    return template.content;
  }

  function applyRenderPatch(content, patch) {
    var head = /^(\d+)\n(\d+)\n/.exec(patch);
    var old = content.liveTail || "";
    if (content.liveRefused || !head || Number(head[1]) > old.length) return refuse(content);
    var tail = old.slice(0, Number(head[1])) + patch.slice(head[0].length);
    var commit = Number(head[2]);
    var finished = commit <= tail.length ? allowedHTML(tail.slice(0, commit)) : null;
    var rest = finished && allowedHTML(tail.slice(commit));
    if (!rest) return refuse(content);
    if (commit) {
      var blocks = content.querySelector(".live-blocks");
      blocks.appendChild(finished);
      decorateCodeBlocks(blocks.parentNode); // a finished code block gets its header now, not at the end
    }
    content.liveTail = tail.slice(commit);
    content.querySelector(".live-tail").replaceChildren(rest);
  }

  function refuse(content) {
    content.liveRefused = true;
  }

  // A reply's stream resumes where it left off. The browser's own reconnection sends Last-Event-ID, but
  // the SSE extension (htmx-ext-sse 2.2.4, chatbot/static/vendor/) handles an error that closes the
  // source by opening a new EventSource from the element's sse-connect attribute, and a new EventSource
  // sends no Last-Event-ID. So the attribute's URL carries ?after=<the last event seen>, and the new
  // source asks for what follows: nothing is shown twice or skipped. Check this when updating the extension.
  function rememberLastEvent(element, message) {
    var source = element.closest && element.closest("[sse-connect]");
    if (!message.lastEventId || !source) return;
    var url = source.getAttribute("sse-connect").split("?")[0];
    source.setAttribute("sse-connect", url + "?after=" + encodeURIComponent(message.lastEventId));
  }

  // A reply's stream opens as soon as the answer that starts it arrives, not once htmx has swapped that
  // answer in: the answer names the stream in its X-Reply-Stream header, and at htmx:beforeSwap the
  // EventSource is created. The SSE extension, which calls htmx.createEventSource(url) for the
  // swapped-in sse-connect element (and only sets its own when there is none), is handed that source.
  // No event can be missed meanwhile: an EventSource dispatches its events in tasks of their own, and
  // htmx swaps the answer and processes it (swapDelay and settleDelay are 0) within the task that fires
  // htmx:beforeSwap, so the extension's listeners are on before any event. A source no element took
  // (the answer was not swapped) is closed after that task.
  var earlyStreams = {};

  function openEarlyStream(event) {
    var url = event.detail.xhr && event.detail.xhr.getResponseHeader("X-Reply-Stream");
    if (!url || !event.detail.shouldSwap || earlyStreams[url]) return;
    var source = new EventSource(url, { withCredentials: true });
    earlyStreams[url] = source;
    setTimeout(function () {
      if (earlyStreams[url] !== source) return;
      delete earlyStreams[url];
      source.close();
    }, 0);
  }

  if (window.htmx) {
    htmx.createEventSource = function (url) {
      var source = earlyStreams[url];
      delete earlyStreams[url];
      return source || new EventSource(url, { withCredentials: true });
    };
    document.addEventListener("htmx:beforeSwap", openEarlyStream);
  }

  // A reply refreshes the sidebar list, which would wipe search results the user is reading.
  function keepsSearchResults(message) {
    var search = document.querySelector('#sidebar input[type="search"]');
    return (message.type === "sidebar" || message.type === "title") && search && search.value.trim() !== "";
  }

  // Each event of a reply's stream, before the extension swaps it in.
  document.addEventListener("htmx:sseBeforeMessage", function (event) {
    var message = event.detail;
    rememberLastEvent(event.target, message);
    if (keepsSearchResults(message)) {
      event.preventDefault();
    } else if (message.type === "render") {
      event.preventDefault();
      applyRenderPatch(event.target, message.data);
    }
  });

  // A reply's stream is over: its wrapper (the event source, the hidden sidebar target) goes, the
  // finished message stays, so Retry or Regenerate replaces the message alone, never inside an old stream.
  document.addEventListener("htmx:sseClose", function (event) {
    var wrapper = event.target;
    if (event.detail.type !== "message" || !wrapper.classList || !wrapper.classList.contains("reply-stream")) return;
    setTimeout(function () { // after the extension has closed the source
      var message = wrapper.querySelector("article.message");
      if (!message || !wrapper.parentNode) return;
      var focused = document.activeElement;
      wrapper.replaceWith(message); // moving the message takes the focus from it: give it back
      if (focused && message.contains(focused)) focused.focus({ preventScroll: true });
    }, 0);
  });

  // htmx triggers htmx:load on the body once it has processed the page at start (htmx 2.0.11, in a
  // timeout after DOMContentLoaded), then on each swapped-in element: one listener covers both.
  document.addEventListener("htmx:load", function (event) {
    decorateCodeBlocks(event.detail.elt);
  });
  // A conversation opened (from the sidebar, New chat, or the back button) starts at its end. Other swaps
  // (the sidebar's list, a rename, a reply's pieces) never scroll the pane by themselves.
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "chat") scrollToEnd();
  });
  document.addEventListener("htmx:historyRestore", scrollToEnd);
  document.addEventListener("DOMContentLoaded", scrollToEnd);

  // Clicks, by feature. Each handler returns true when the click was its own and nothing else applies.
  function jumpToLatest(target) {
    if (!target.closest("#jump-latest")) return false;
    scrollToEnd();
    messagesPane().focus({ preventScroll: true }); // the button hides: keep the focus near it
    return true;
  }

  function closeMenus(target) {
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      // A click elsewhere closes the menu, and so does an item (an export downloads and leaves the page as it was).
      if (!menu.contains(target) || target.closest(".menu-items a")) menu.open = false;
    });
  }

  function copyButtons(target) {
    var codeButton = target.closest(".copy-code");
    var linkButton = target.closest(".copy-link");
    var replyButton = target.closest(".copy-reply");
    if (codeButton) copy(codeButton, codeButton.closest(".highlight").querySelector("code").innerText);
    else if (linkButton) copy(linkButton, linkButton.getAttribute("data-url"));
    else if (replyButton) copy(replyButton, replyButton.closest(".bubble").querySelector(".content").innerText);
    return Boolean(codeButton || linkButton || replyButton);
  }

  function sidebarDrawer(target) {
    var sidebar = document.getElementById("sidebar");
    if (!sidebar) return;
    var toggle = target.closest(".sidebar-toggle");
    if (toggle) {
      var open = sidebar.classList.toggle("open");
      toggle.setAttribute("aria-expanded", String(open));
      if (open) sidebar.querySelector("a, input, button").focus();
    } else if (target.closest("#conversation-list .entry-link, .new-chat") || !target.closest("#sidebar")) {
      closeSidebar(); // a conversation chosen, or a tap outside the drawer (on its backdrop)
    }
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (jumpToLatest(target) || attachments(target)) return;
    closeMenus(target);
    if (copyButtons(target)) return;
    sidebarDrawer(target);
  });
})();
