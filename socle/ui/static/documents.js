"use strict";
// My documents: each selected file is sent on its own (its progress bar), then its ingestion is followed
// until it is ready or failed. Names and reasons are shown as text, never as HTML.
(() => {
  const LABELS = {queued: "En attente", processing: "En cours de traitement", ready: "Prêt", failed: "Échec"};
  const BADGES = {queued: "new", processing: "info", ready: "success", failed: "error"};
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";

  function showStatus(cell, state) {
    cell.dataset.status = state.status;
    const badge = document.createElement("p");
    badge.className = `fr-badge fr-badge--sm fr-badge--${BADGES[state.status] || "info"}`;
    badge.textContent = LABELS[state.status] || state.status;
    const parts = [badge];
    if (state.status === "failed") {
      const reason = document.createElement("p");
      reason.className = "fr-text--sm fr-mb-0";
      reason.textContent = state.error || "Raison inconnue";
      parts.push(reason);
    }
    cell.replaceChildren(...parts);
  }

  function follow(cell, id) {
    const poll = async () => {
      try {
        const response = await fetch(`/ui/api/documents/${id}`, {headers: {accept: "application/json"}});
        if (response.ok) {
          const state = await response.json();
          if (state.status !== cell.dataset.status) showStatus(cell, state);
          if (state.status === "ready" || state.status === "failed") return;
        }
      } catch (_) { /* the network blinked: try again */ }
      setTimeout(poll, 1000);
    };
    setTimeout(poll, 500);
  }

  document.querySelectorAll(".socle-status[data-document-id]").forEach((cell) => {
    if (cell.dataset.status === "queued" || cell.dataset.status === "processing") follow(cell, cell.dataset.documentId);
  });

  function send(file, collection, row) {
    const [nameCell, progressCell, statusCell] = row.cells;
    const progress = document.createElement("progress");
    progress.max = 100;
    progress.value = 0;
    progress.setAttribute("aria-label", `Envoi de ${file.name}`);
    progressCell.append(progress);
    nameCell.textContent = file.name;
    statusCell.textContent = "Envoi…";
    return new Promise((resolve) => {
      const request = new XMLHttpRequest();
      request.open("POST", "/ui/api/documents");
      request.setRequestHeader("x-csrf-token", csrf);
      request.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) progress.value = Math.round((100 * event.loaded) / event.total);
      });
      request.addEventListener("load", () => {
        let payload = {};
        try { payload = JSON.parse(request.responseText); } catch (_) { /* not JSON */ }
        if (request.status === 200 || request.status === 201) {
          progress.value = 100;
          statusCell.dataset.documentId = payload.id;
          showStatus(statusCell, payload);
          if (payload.status !== "ready" && payload.status !== "failed") follow(statusCell, payload.id);
        } else {
          showStatus(statusCell, {status: "failed",
                                  error: (payload.error && payload.error.message) || `Erreur ${request.status}`});
        }
        resolve();
      });
      request.addEventListener("error", () => {
        showStatus(statusCell, {status: "failed", error: "L'envoi a échoué : vérifiez votre connexion."});
        resolve();
      });
      const body = new FormData();
      body.append("collection", collection);
      body.append("file", file);
      request.send(body);
    });
  }

  const uploader = document.getElementById("upload-form");
  if (uploader) {
    uploader.addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = document.getElementById("files");
      const files = Array.from(input.files);
      if (!files.length) return;
      const table = document.getElementById("uploads-table");
      const rows = document.getElementById("uploads");
      table.hidden = false;
      const pending = files.map((file) => {
        const row = rows.insertRow();
        row.insertCell(); row.insertCell(); row.insertCell();
        row.cells[2].className = "socle-status";
        return [file, row];
      });
      input.value = "";
      for (const [file, row] of pending) await send(file, uploader.dataset.collection, row);  // one at a time
    });
  }

  // Creating a collection: a group's radio button names its group.
  const groupField = document.getElementById("group_id");
  document.querySelectorAll('input[name="visibility"]').forEach((radio) => {
    radio.addEventListener("change", () => { if (groupField) groupField.value = radio.dataset.groupId || ""; });
  });
})();
