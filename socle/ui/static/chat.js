"use strict";
// The chat: sends the conversation, shows the answer as it streams (as text), then as the Markdown the server
// rendered with raw HTML escaped. The stop button aborts the fetch, which stops the model on the server.
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
  const messages = [];
  let controller = null;

  const say = (text) => { status.textContent = text; };

  function bubble(role, author) {
    const item = document.createElement("article");
    item.className = `socle-message socle-message--${role}`;
    const who = document.createElement("h2");
    who.className = "socle-message__author fr-text--sm fr-mb-1v";
    who.textContent = author;
    const body = document.createElement("div");
    body.className = "socle-message__body";
    item.append(who, body);
    conversation.append(item);
    return body;
  }

  async function failure(response) {
    try {
      const payload = await response.json();
      return (payload.error && payload.error.message) || `Erreur ${response.status}`;
    } catch (_) {
      return `Erreur ${response.status}`;
    }
  }

  async function ask(text) {
    messages.push({role: "user", content: text});
    bubble("user", "Vous").textContent = text;
    const body = bubble("assistant", `Réponse de ${model.value}`);
    body.setAttribute("aria-busy", "true");
    body.scrollIntoView({block: "end"});
    controller = new AbortController();
    send.disabled = true;
    stop.disabled = false;
    say("Réponse en cours…");
    let answer = "";
    try {
      const response = await fetch("/ui/api/chat", {
        method: "POST", signal: controller.signal,
        headers: {"content-type": "application/json", "x-csrf-token": csrf},
        body: JSON.stringify({model: model.value, messages}),
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
          if (event.type === "delta") {
            answer += event.text;
            body.textContent = answer;  // text only while it streams
          } else if (event.type === "done") {
            body.innerHTML = event.html;  // rendered by the server's Markdown renderer, raw HTML escaped
            body.dataset.done = "true";
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
      if (answer) messages.push({role: "assistant", content: answer});
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
    prompt.value = "";
    ask(text);
  });
  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  stop.addEventListener("click", () => { if (controller) controller.abort(); });
})();
