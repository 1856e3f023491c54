"use strict";
// Files dropped into a conversation (or chosen with the button): each is sent to the conversation's private
// collection — a new conversation is made for the first file, and the page then opens it — and its ingestion
// is followed until it is ready, as text. For a demonstration model, the choice of its own written answer.
(() => {
  const form = document.getElementById("chat-form");
  const input = document.getElementById("chat-fichier");
  const list = document.getElementById("chat-fichiers-liste");
  if (!form || !input || !list) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const model = document.getElementById("model");
  const LABELS = {queued: "en attente", processing: "en cours de lecture", ready: "prêt : les réponses le citent",
                  failed: "échec"};
  const BADGES = {queued: "new", processing: "info", ready: "success", failed: "error"};

  function entry(name) {
    const item = document.createElement("li");
    item.className = "socle-chat-fichier fr-text--sm fr-mb-1v";
    const label = document.createElement("span");
    label.className = "socle-chat-fichier__nom";
    label.textContent = name;
    const state = document.createElement("span");
    state.className = "fr-badge fr-badge--sm fr-ml-1w";
    item.append(label, state);
    list.append(item);
    return item;
  }

  function show(item, file) {
    const state = item.querySelector(".fr-badge");
    item.dataset.status = file.status;
    state.className = `fr-badge fr-badge--sm fr-ml-1w fr-badge--${BADGES[file.status] || "info"}`;
    state.textContent = LABELS[file.status] || file.status;
    if (file.status === "failed" && file.error) state.textContent += ` (${file.error})`;
  }

  function follow(item, id) {
    const poll = async () => {
      try {
        const response = await fetch(`/ui/api/documents/${id}`, {headers: {accept: "application/json"}});
        if (response.ok) {
          const file = await response.json();
          show(item, file);
          if (file.status === "ready" || file.status === "failed") return;
        }
      } catch (_) { /* the network blinked: try again */ }
      setTimeout(poll, 1000);
    };
    setTimeout(poll, 500);
  }

  async function send(file) {
    const item = entry(file.name);
    item.querySelector(".fr-badge").textContent = "envoi…";
    const body = new FormData();
    body.append("file", file);
    if (form.dataset.conversation) body.append("conversation", form.dataset.conversation);
    else if (model) body.append("model", model.value);
    let payload = {};
    try {
      const response = await fetch("/ui/api/conversations/fichiers", {
        method: "POST", headers: {"x-csrf-token": csrf}, body});
      try { payload = await response.json(); } catch (_) { /* not JSON */ }
      if (!response.ok) {
        show(item, {status: "failed", error: (payload.error && payload.error.message) || `Erreur ${response.status}`});
        return;
      }
    } catch (_) {
      show(item, {status: "failed", error: "L'envoi a échoué : vérifiez votre connexion."});
      return;
    }
    if (!form.dataset.conversation) {  // the conversation made for this file: open it
      window.location.assign(payload.url);
      return;
    }
    show(item, payload.document);
    if (payload.document.status !== "ready" && payload.document.status !== "failed") {
      follow(item, payload.document.id);
    }
  }

  async function sendAll(files) {
    for (const file of files) {
      await send(file);  // one at a time: the first may make the conversation
      if (!form.dataset.conversation) return;
    }
  }

  input.addEventListener("change", () => {
    const files = Array.from(input.files);
    input.value = "";
    sendAll(files);
  });

  // Dropping a file anywhere on the conversation or its form.
  const zones = [form, document.getElementById("conversation")].filter(Boolean);
  for (const zone of zones) window.socleDropZone(zone, sendAll);

  // The files already in this conversation.
  if (form.dataset.conversation) {
    fetch(`/ui/api/conversations/${form.dataset.conversation}/fichiers`, {headers: {accept: "application/json"}})
      .then((response) => (response.ok ? response.json() : {files: []}))
      .then((payload) => {
        for (const file of payload.files) {
          const item = entry(file.name);
          show(item, file);
          if (file.status !== "ready" && file.status !== "failed") follow(item, file.id);
        }
      })
      .catch(() => { /* the list comes back on the next visit */ });
  }

  // A demonstration model: its own written answer only when asked (sent by chat.js as ``generate``).
  const generate = document.getElementById("generer");
  const group = document.getElementById("generer-groupe");
  if (generate && group && model) {
    const demos = group.dataset.models.split(" ");
    const update = () => {
      const demo = demos.includes(model.value);
      group.hidden = !demo;
      form.dataset.generate = demo && generate.checked ? "true" : "false";
    };
    model.addEventListener("change", update);
    generate.addEventListener("change", update);
    update();
  }
})();
