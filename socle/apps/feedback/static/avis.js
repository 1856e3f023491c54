"use strict";
// Avis usagers: follows the analyses that run (their progress, then the page again once they end), offers
// only the models of the chosen engine, and prints the report. Texts are set as text, never as HTML.
(() => {
  const ACTIVE = new Set(["queued", "running"]);
  const nombre = (n) => Number(n).toLocaleString("fr-FR");

  function follow(row) {
    const id = row.dataset.analyseId;
    const part = (role) => row.querySelector(`[data-role="${role}"]`);
    const poll = async () => {
      try {
        const response = await fetch(`/ui/api/avis/analyses/${id}`, {headers: {accept: "application/json"}});
        if (response.ok) {
          const state = await response.json();
          const bar = part("barre");
          if (bar) { bar.max = state.total || 1; bar.value = state.handled; bar.textContent = `${state.percent} %`; }
          const count = part("compte");
          if (count) count.textContent = `${nombre(state.handled)} / ${nombre(state.total)}`
                                         + (state.failed ? ` (${nombre(state.failed)} invalides)` : "");
          const tokens = part("jetons");
          if (tokens) tokens.textContent = nombre(state.tokens);
          const status = part("etat");
          if (status && status.textContent !== state.status_label) status.textContent = state.status_label;
          if (!ACTIVE.has(state.status)) {
            window.location.reload();  // its report and actions change with its end
            return;
          }
        }
      } catch (_) { /* the network blinked: try again */ }
      setTimeout(poll, 2000);
    };
    setTimeout(poll, 1000);
  }
  document.querySelectorAll(".socle-analyse[data-analyse-id]").forEach((row) => {
    if (ACTIVE.has(row.dataset.status)) follow(row);
  });

  // The model list shows the chosen engine's models only.
  const form = document.getElementById("form-analyse");
  if (form) {
    const select = form.querySelector("#modele");
    const update = () => {
      const engine = (form.querySelector('input[name="engine"]:checked') || {}).value;
      if (!select || !engine) return;
      let firstShown = null;
      select.querySelectorAll("optgroup").forEach((group) => {
        const shown = group.dataset.engine === engine;
        group.hidden = !shown;
        group.disabled = !shown;
        if (shown && !firstShown) firstShown = group.querySelector("option");
      });
      const current = select.selectedOptions[0];
      if ((!current || current.parentElement.disabled) && firstShown) firstShown.selected = true;
    };
    form.querySelectorAll('input[name="engine"]').forEach((radio) => radio.addEventListener("change", update));
    update();
  }

  document.querySelectorAll("[data-imprimer]").forEach((button) => {
    button.hidden = false;
    button.addEventListener("click", () => window.print());
  });
})();
