"use strict";
// The chat and "Interroger mes documents": sends the new message (the server holds the conversation), shows the
// sources of an answer about documents and the answer as it streams, as text; then the answer as the Markdown
// the server rendered with raw HTML escaped, and its rating form. The stop button aborts the fetch, which stops
// the model on the server (what was generated is saved there).
(() => {
  const form = document.getElementById("chat-form");
  if (!form) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const conversation = document.getElementById("conversation");
  const prompt = document.getElementById("prompt");
  const model = document.getElementById("model");
  const send = document.getElementById("send");
  const stop = document.getElementById("stop");
  const status = document.getElementById("chat-status");
  const aboutDocuments = form.dataset.mode === "documents";
  let conversationId = form.dataset.conversation ? Number(form.dataset.conversation) : null;
  let controller = null;

  const say = (text) => { status.textContent = text; };

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
    conversation.append(item);
    return body;
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
      list.className = "socle-sources__liste";
      for (const source of sources) {
        const entry = document.createElement("li");
        entry.className = "socle-source";
        const link = document.createElement("a");
        link.className = "fr-link fr-link--sm";
        link.href = source.url;  // built by the server from numbers only
        link.textContent = `[${source.number}] ${source.document}` + (source.page ? `, page ${source.page}` : "");
        const excerpt = document.createElement("blockquote");
        excerpt.className = "socle-source__extrait fr-text--sm";
        excerpt.textContent = source.excerpt;
        entry.append(link, excerpt);
        list.append(entry);
      }
      box.append(list);
    }
    item.append(box);
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

  async function failure(response) {
    try {
      const payload = await response.json();
      return (payload.error && payload.error.message) || `Erreur ${response.status}`;
    } catch (_) {
      return `Erreur ${response.status}`;
    }
  }

  function chosenCollections() {
    return Array.from(form.querySelectorAll('input[name="collections"]:checked'), (box) => Number(box.value));
  }

  async function ask(text, collections) {
    bubble("user", "Vous").textContent = text;
    const body = bubble("assistant", `Réponse de ${model.value}`);
    const item = body.parentElement;
    body.setAttribute("aria-busy", "true");
    body.scrollIntoView({block: "end"});
    controller = new AbortController();
    send.disabled = true;
    stop.disabled = false;
    say(collections.length ? "Recherche dans vos documents…" : "Réponse en cours…");
    let answer = "";
    try {
      const response = await fetch("/ui/api/chat", {
        method: "POST", signal: controller.signal,
        headers: {"content-type": "application/json", "x-csrf-token": csrf},
        body: JSON.stringify({model: model.value, content: text, conversation: conversationId, collections}),
      });
      if (!response.ok) throw new Error(await failure(response));
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
            body.textContent = answer;  // text only while it streams
          } else if (event.type === "done") {
            body.innerHTML = event.html;  // rendered by the server's Markdown renderer, raw HTML escaped
            body.dataset.done = "true";
            if (event.message) item.id = `message-${event.message}`;
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
    } catch (error) {
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
    } finally {
      body.removeAttribute("aria-busy");
      controller = null;
      send.disabled = false;
      stop.disabled = true;
    }
  }

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
    ask(text, collections);
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
})();
