"use strict";
// The chat and "Interroger mes documents": sends the new message (the server holds the conversation), shows the
// sources of an answer about documents and the answer as it streams: as text, then as the Markdown the server
// renders a few times a second (raw HTML escaped there: the model's own HTML never reaches the page), and at the
// end its rating form. Each answer can be copied (its code blocks too) and the last one written again; a
// question can be edited and sent again, the earlier version staying reachable ("1/2", rendered by the server).
// The stop button (or Escape) aborts the fetch, which stops the model on the server (what was generated is
// saved there). A question refused before any answer stays in the box, with the reason.
(() => {
  const form = document.getElementById("chat-form");
  if (!form) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const conversation = document.getElementById("conversation");
  const prompt = document.getElementById("prompt");
  const promptGroup = document.getElementById("prompt-group");
  const promptError = document.getElementById("prompt-erreur");
  const model = document.getElementById("model");
  const send = document.getElementById("send");
  const stop = document.getElementById("stop");
  const status = document.getElementById("chat-status");
  const aboutDocuments = form.dataset.mode === "documents";
  let conversationId = form.dataset.conversation ? Number(form.dataset.conversation) : null;
  let controller = null;

  const say = (text) => { status.textContent = text; };

  function showError(text) {
    promptGroup.classList.toggle("fr-input-group--error", Boolean(text));
    if (!text) { promptError.replaceChildren(); return; }
    const note = document.createElement("p");
    note.className = "fr-error-text";
    note.textContent = text;
    promptError.replaceChildren(note);
  }

  function actionButton(className, icon, label) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = `fr-btn fr-btn--sm fr-btn--tertiary-no-outline fr-btn--icon-left ${icon} ${className}`;
    button.textContent = label;
    return button;
  }

  function bubble(role, author) {
    const item = document.createElement("article");
    item.className = `socle-message socle-message--${role}`;
    const who = document.createElement("h2");
    who.className = "socle-message__author fr-text--sm fr-mb-1v";
    who.textContent = author;
    item.append(who);
    if (role === "assistant") {  // every generated answer says so (AI Act transparency), as _message.html does
      const label = document.createElement("p");
      label.className = "fr-badge fr-badge--sm fr-badge--info fr-badge--no-icon socle-ai-label";
      label.textContent = `Réponse générée par IA — modèle ${model.value}`;
      item.append(label);
    }
    const body = document.createElement("div");
    body.className = "socle-message__body";
    item.append(body);
    const actions = document.createElement("div");
    actions.className = "socle-message__actions";
    if (role === "assistant") {
      actions.append(actionButton("socle-copier", "fr-icon-clipboard-line", "Copier la réponse"));
    } else {
      actions.append(actionButton("socle-modifier", "fr-icon-edit-line", "Modifier la question"));
    }
    actions.hidden = true;  // shown once the message is saved
    item.append(actions);
    conversation.append(item);
    return body;
  }

  // Copy to the clipboard; the button says "Copié" for a moment, and screen readers hear it.
  async function copy(button, text, done) {
    const label = button.textContent;
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copié";
      say(done);
    } catch (_) {
      say("La copie n'a pas pu se faire : sélectionnez le texte pour le copier.");
      return;
    }
    window.setTimeout(() => { button.textContent = label; }, 2000);
  }

  // A code block of a rendered answer gets its own copy button.
  function decorateCode(body) {
    body.querySelectorAll("pre").forEach((block) => {
      if (block.parentElement.classList.contains("socle-code")) return;
      const box = document.createElement("div");
      box.className = "socle-code";
      block.replaceWith(box);
      const button = document.createElement("button");
      button.type = "button";
      button.className = "fr-btn fr-btn--sm fr-btn--tertiary fr-btn--icon-left fr-icon-clipboard-line socle-code__copier";
      button.textContent = "Copier le code";
      button.addEventListener("click", () => copy(button, block.textContent, "Code copié dans le presse-papiers."));
      box.append(button, block);
    });
  }

  // A saved message: its buttons work and show; only the last answer can be written again.
  function decorate(item) {
    const body = item.querySelector(".socle-message__body");
    decorateCode(body);
    const actions = item.querySelector(".socle-message__actions");
    if (actions) actions.hidden = false;
    item.querySelectorAll(".socle-copier").forEach((button) => {
      button.hidden = false;
      button.onclick = () => copy(button, body.innerText, "Réponse copiée dans le presse-papiers.");
    });
    item.querySelectorAll(".socle-regenerer").forEach((button) => {
      button.hidden = false;
      button.onclick = () => {
        if (controller) return;
        const removed = [item];
        item.remove();
        ask({again: Number(item.dataset.message), removed});
      };
    });
    item.querySelectorAll(".socle-modifier").forEach((button) => {
      button.hidden = false;
      button.onclick = () => edit(item, button);
    });
  }

  function forgetRegenerate() {  // a newer answer follows: the earlier ones are no longer the last
    conversation.querySelectorAll(".socle-regenerer").forEach((button) => button.remove());
  }

  // Editing a question: its text in a box of its own; Escape or "Annuler" puts it back as it was.
  function edit(item, button) {
    if (controller || item.querySelector(".socle-edition")) return;
    const body = item.querySelector(".socle-message__body");
    const box = document.createElement("form");
    box.className = "socle-edition";
    const id = `edition-${item.dataset.message}`;
    const label = document.createElement("label");
    label.className = "fr-label";
    label.htmlFor = id;
    label.textContent = "Nouvelle version de la question";
    const area = document.createElement("textarea");
    area.className = "fr-input";
    area.id = id;
    area.rows = 3;
    area.maxLength = 100000;
    area.value = body.textContent;
    const buttons = document.createElement("ul");
    buttons.className = "fr-btns-group fr-btns-group--inline fr-btns-group--sm fr-mt-1w fr-mb-0";
    const sendIt = document.createElement("button");
    sendIt.type = "submit";
    sendIt.className = "fr-btn";
    sendIt.textContent = "Envoyer la nouvelle version";
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "fr-btn fr-btn--secondary";
    cancel.textContent = "Annuler";
    for (const one of [sendIt, cancel]) {
      const entry = document.createElement("li");
      entry.append(one);
      buttons.append(entry);
    }
    box.append(label, area, buttons);
    const close = () => {
      box.remove();
      body.hidden = false;
      button.hidden = false;
      button.focus();
    };
    cancel.addEventListener("click", close);
    area.addEventListener("keydown", (event) => {
      if (event.key === "Escape") { event.preventDefault(); event.stopPropagation(); close(); }
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); box.requestSubmit(); }
    });
    box.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = area.value.trim();
      if (!text || controller) return;
      const removed = [];  // this question and what follows it make way for the new version
      for (let node = item; node; node = node.nextElementSibling) removed.push(node);
      removed.forEach((node) => node.remove());
      ask({text, edit: Number(item.dataset.message), removed});
    });
    body.hidden = true;
    button.hidden = true;
    body.after(box);
    area.focus();
    say("Modifiez la question puis envoyez-la ; Échap pour annuler.");
  }

  // The chosen model's card, shown before anything is sent.
  const showCard = () => {
    document.querySelectorAll(".socle-model-card").forEach((card) => {
      card.hidden = card.dataset.model !== model.value;
    });
  };
  model.addEventListener("change", showCard);
  showCard();

  // The same markup as _sources.html, built from data: a document's name and text are only ever text here.
  function showSources(item, sources) {
    const box = document.createElement("div");
    box.className = "socle-sources";
    const title = document.createElement("h3");
    title.className = "socle-sources__titre fr-text--sm fr-mb-1v";
    title.textContent = "Sources";
    box.append(title);
    if (!sources.length) {
      const none = document.createElement("p");
      none.className = "fr-text--sm fr-mb-0";
      none.textContent = "Aucun passage de vos documents ne correspond à la question : la réponse ne s'appuie sur aucun d'eux.";
      box.append(none);
    } else {
      const list = document.createElement("ol");
      list.className = "socle-sources__liste fr-accordions-group";
      const prefix = `source-${Date.now()}`;
      for (const source of sources) {  // folded: number, document, page; opened to read the passage
        const entry = document.createElement("li");
        entry.className = "socle-source fr-accordion";
        const heading = document.createElement("h4");
        heading.className = "fr-accordion__title";
        const button = document.createElement("button");
        button.type = "button";
        button.className = "fr-accordion__btn";
        button.setAttribute("aria-expanded", "false");
        button.setAttribute("aria-controls", `${prefix}-${source.number}`);
        button.textContent = `[${source.number}] ${source.document}` + (source.page ? `, page ${source.page}` : "");
        heading.append(button);
        const folded = document.createElement("div");
        folded.className = "fr-collapse";
        folded.id = `${prefix}-${source.number}`;
        const excerpt = document.createElement("blockquote");
        excerpt.className = "socle-source__extrait fr-text--sm";
        excerpt.textContent = source.excerpt;
        const link = document.createElement("a");
        link.className = "fr-link fr-link--sm";
        link.href = source.url;  // built by the server from numbers only
        link.textContent = "Lire le passage dans le document";
        folded.append(excerpt, link);
        entry.append(heading, folded);
        list.append(entry);
      }
      box.append(list);
    }
    item.querySelector(".socle-message__body").after(box);
  }

  function remember(event) {
    if (conversationId !== null) return;
    conversationId = event.id;
    form.dataset.conversation = String(event.id);
    window.history.replaceState(null, "", event.url);
    const list = document.getElementById("conversations");
    if (!list) return;
    list.querySelectorAll(".socle-conversations__vide").forEach((empty) => empty.remove());
    const entry = document.createElement("li");
    entry.className = "fr-sidemenu__item fr-sidemenu__item--active";
    const link = document.createElement("a");
    link.className = "fr-sidemenu__link";
    link.href = event.url;
    link.setAttribute("aria-current", "page");
    link.textContent = event.title;
    entry.append(link);
    list.prepend(entry);
  }

  // A refusal in plain words; for a limit reached, when to try again (the Retry-After header, in seconds).
  async function failure(response) {
    let text = `Erreur ${response.status}`;
    try {
      const payload = await response.json();
      text = (payload.error && payload.error.message) || text;
    } catch (_) { /* the status says enough */ }
    const wait = Number(response.headers.get("retry-after"));
    if (response.status === 429 && wait > 0) {
      const at = new Date(Date.now() + wait * 1000).toLocaleTimeString("fr-FR", {hour: "2-digit", minute: "2-digit"});
      const delay = wait < 120 ? `${Math.ceil(wait)} secondes`
        : wait < 7200 ? `${Math.ceil(wait / 60)} minutes` : `${Math.ceil(wait / 3600)} heures`;
      text += ` Vous pourrez réessayer dans ${delay}, vers ${at}.`;
    }
    const error = new Error(text);
    error.refused = true;
    return error;
  }

  function chosenCollections() {
    return Array.from(document.querySelectorAll('input[name="collections"]:checked'), (box) => Number(box.value));
  }

  // One turn: a new question (text), a new version of a question (edit) or of the last answer (again).
  async function ask({text = "", edit = null, again = null, removed = [], collections = chosenCollections()}) {
    showError("");
    const question = again === null ? bubble("user", "Vous") : null;
    if (question) question.textContent = text;
    const body = bubble("assistant", `Réponse de ${model.value}`);
    const item = body.parentElement;
    body.setAttribute("aria-busy", "true");
    body.scrollIntoView({block: "end"});
    controller = new AbortController();
    send.disabled = true;
    stop.disabled = false;
    say(collections.length ? "Recherche dans vos documents…" : "Réponse en cours…");
    let answer = "";
    let rendered = false;
    let saved = null;
    try {
      const response = await fetch("/ui/api/chat", {
        method: "POST", signal: controller.signal,
        headers: {"content-type": "application/json", "x-csrf-token": csrf},
        body: JSON.stringify({model: model.value, content: text, conversation: conversationId, collections,
                              edit, again, generate: form.dataset.generate === "true"}),
      });
      if (!response.ok) throw await failure(response);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, end);
          buffer = buffer.slice(end + 1);
          if (!line) continue;
          const event = JSON.parse(line);
          if (event.type === "conversation") {
            remember(event);
          } else if (event.type === "sources") {
            showSources(item, event.sources);
            say("Réponse en cours…");
          } else if (event.type === "delta") {
            answer += event.text;
            if (event.html !== undefined) {
              body.innerHTML = event.html;  // rendered by the server's Markdown renderer, raw HTML escaped
              body.dataset.rendered = "true";
              rendered = true;
            } else if (!rendered) {
              body.textContent = answer;  // text only, until the server's rendering comes
            }
          } else if (event.type === "done") {
            body.innerHTML = event.html;  // rendered by the server's Markdown renderer, raw HTML escaped
            body.dataset.done = "true";
            if (event.extraits) {  // quoted from the documents, written by no model: labelled as _message.html does
              const label = item.querySelector(".socle-ai-label");
              label.classList.remove("fr-badge--info");
              label.classList.add("socle-extraits-label");
              label.textContent = "Extraits de vos documents, sans reformulation";
            }
            saved = event.message;
            if (event.message) { item.id = `message-${event.message}`; item.dataset.message = String(event.message); }
            if (question && event.question) {
              question.parentElement.id = `message-${event.question}`;
              question.parentElement.dataset.message = String(event.question);
            }
            if (event.rating_html) {
              const rating = document.createElement("div");
              rating.innerHTML = event.rating_html;  // the server's own template, its values escaped
              item.append(...rating.childNodes);
            }
          } else if (event.type === "error") {
            throw new Error(event.message);
          }
        }
      }
      say("Réponse terminée.");
      if (saved) {
        forgetRegenerate();
        item.querySelector(".socle-message__actions").append(
          actionButton("socle-regenerer", "fr-icon-refresh-line", "Régénérer la réponse"));
        decorate(item);
        if (question && question.parentElement.dataset.message) decorate(question.parentElement);
      }
      if (saved && (edit !== null || again !== null)) {  // the server shows the versions: "2/2"
        window.history.replaceState(null, "", `/ui/chat/${conversationId}#message-${saved}`);
        window.location.reload();
      }
    } catch (error) {
      if (error.refused) {  // nothing was saved: the question goes back in the box, with the reason
        item.remove();
        if (question) question.parentElement.remove();
        removed.forEach((node) => conversation.append(node));
        if (edit === null && again === null) prompt.value = text;
        showError(error.message);
        say(error.message);
        prompt.focus();
      } else {
        const note = document.createElement("p");
        note.className = "fr-error-text";
        if (error.name === "AbortError") {
          note.textContent = "Réponse interrompue.";
          body.dataset.stopped = "true";
        } else {
          note.textContent = error.message;
        }
        body.append(note);
        say(note.textContent);
      }
    } finally {
      body.removeAttribute("aria-busy");
      controller = null;
      send.disabled = false;
      stop.disabled = true;
    }
  }

  conversation.querySelectorAll(".socle-message[data-message]").forEach(decorate);

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = prompt.value.trim();
    if (!text || controller) return;
    const collections = aboutDocuments ? chosenCollections() : [];
    const message = document.getElementById("collections-message");
    if (aboutDocuments) {
      const group = document.getElementById("collections");
      if (!collections.length) {
        if (group && message) {
          group.classList.add("fr-fieldset--error");
          const error = document.createElement("p");
          error.className = "fr-message fr-message--error";
          error.textContent = "Cochez au moins une collection à interroger.";
          message.replaceChildren(error);
        }
        say("Cochez au moins une collection à interroger.");
        return;
      }
      if (group && message) {
        group.classList.remove("fr-fieldset--error");
        message.replaceChildren();
      }
    }
    prompt.value = "";
    const welcome = document.getElementById("accueil");
    if (welcome) welcome.remove();  // the conversation has begun
    ask({text, collections});
  });
  // A suggestion of the welcome screen fills the message box, for the person to complete and send.
  document.querySelectorAll(".socle-suggestion").forEach((button) => {
    button.addEventListener("click", () => {
      prompt.value = button.dataset.text;
      prompt.focus();
      prompt.setSelectionRange(prompt.value.length, prompt.value.length);
    });
  });
  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  stop.addEventListener("click", () => { if (controller) controller.abort(); });
  document.addEventListener("keydown", (event) => {  // Escape stops an answer being written
    if (event.key === "Escape" && controller) controller.abort();
  });
})();
