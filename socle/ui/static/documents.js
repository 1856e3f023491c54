"use strict";
// My documents: each selected or dropped file is sent on its own (its progress bar), then its ingestion is
// followed until it is ready or failed, and the documents table shows it as it changes (polling stops once every
// document is done). Names and reasons are shown as text, never as HTML.
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
    const row = cell.closest("tr[data-collection]");
    if (row) refreshRow(row, state);
  }

  // A row of the documents table: its name becomes a link to its passages once ready, with its figures.
  function refreshRow(row, state) {
    const name = row.querySelector(".socle-nom");
    if (state.status === "ready" && state.url && name && !name.querySelector("a")) {
      const link = document.createElement("a");
      link.href = state.url;  // built by the server from numbers only
      link.textContent = state.name;
      name.replaceChildren(link);
    }
    const pages = row.querySelector(".socle-pages");
    if (pages) pages.textContent = state.pages === null || state.pages === undefined ? "—" : String(state.pages);
    const passages = row.querySelector(".socle-passages");
    if (passages && state.chunks !== undefined) passages.textContent = String(state.chunks);
  }

  // A document just accepted, added to the documents table (the page lists the others).
  function addRow(state, collection) {
    const body = document.getElementById("documents");
    if (!body || body.querySelector(`[data-document-id="${Number(state.id)}"]`)) return null;
    body.querySelectorAll("tr:not([data-collection])").forEach((empty) => empty.remove());
    const row = body.insertRow();
    row.dataset.collection = collection;
    const columns = body.closest("table").querySelectorAll("thead th").length;
    for (let i = 0; i < columns; i += 1) row.insertCell();
    row.cells[0].className = "socle-nom";
    row.cells[0].textContent = state.name;
    row.cells[1].className = "socle-status";
    row.cells[1].dataset.documentId = state.id;
    row.cells[2].className = "socle-pages";
    row.cells[3].className = "socle-passages";
    for (let i = 4; i < columns; i += 1) row.cells[i].textContent = "—";
    return row.cells[1];
  }

  function follow(cell, id, ...also) {
    const poll = async () => {
      try {
        const response = await fetch(`/ui/api/documents/${id}`, {headers: {accept: "application/json"}});
        if (response.ok) {
          const state = await response.json();
          for (const shown of [cell, ...also]) if (state.status !== shown.dataset.status) showStatus(shown, state);
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
          const listed = addRow(payload, collection);
          if (listed) showStatus(listed, payload);
          if (payload.status !== "ready" && payload.status !== "failed") {
            follow(statusCell, payload.id, ...(listed ? [listed] : []));
          }
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
  async function sendAll(files) {
    const table = document.getElementById("uploads-table");
    const rows = document.getElementById("uploads");
    table.hidden = false;
    const pending = files.map((file) => {
      const row = rows.insertRow();
      row.insertCell(); row.insertCell(); row.insertCell();
      row.cells[2].className = "socle-status";
      return [file, row];
    });
    for (const [file, row] of pending) await send(file, uploader.dataset.collection, row);  // one at a time
  }
  if (uploader) {
    uploader.addEventListener("submit", (event) => {
      event.preventDefault();
      const input = document.getElementById("files");
      const files = Array.from(input.files);
      if (!files.length) return;
      input.value = "";
      window.socleFileNames(input);
      sendAll(files);
    });
    // Files dropped on the zone are sent at once; the file field and its button do the same from the keyboard.
    const zone = document.getElementById("depot");
    if (zone) {
      window.socleDropZone(zone, sendAll);
    }
  }

  // Creating a collection: a group's radio button names its group.
  const groupField = document.getElementById("group_id");
  document.querySelectorAll('input[name="visibility"]').forEach((radio) => {
    radio.addEventListener("change", () => { if (groupField) groupField.value = radio.dataset.groupId || ""; });
  });
})();
