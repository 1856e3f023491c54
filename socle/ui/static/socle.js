"use strict";
// Forms that destroy something ask first (data-confirm holds the question).
document.addEventListener("submit", (event) => {
  const question = event.target.dataset && event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});

// File fields (_fichier.html): the files chosen are named beside the button, in French.
window.socleFileNames = (field) => {
  const shown = document.getElementById(`${field.id}-choisis`);
  const files = Array.from(field.files || []);
  if (!shown) return;
  shown.textContent = files.length === 0 ? "Aucun fichier choisi"
    : files.length === 1 ? files[0].name : `${files.length} fichiers choisis`;
};
document.addEventListener("change", (event) => {
  if (event.target.classList && event.target.classList.contains("socle-fichier__champ")) {
    window.socleFileNames(event.target);
  }
});

// A link shown once (an invitation, a password reset): "Copier" puts it on the clipboard.
document.addEventListener("click", (event) => {
  const button = event.target.closest && event.target.closest("[data-copy]");
  const field = button && document.getElementById(button.dataset.copy);
  if (!field) return;
  field.select();
  const done = () => { button.firstChild.textContent = "Copié"; };
  if (navigator.clipboard) navigator.clipboard.writeText(field.value).then(done, () => {});
  else if (document.execCommand("copy")) done();
});

// Pickers: a field that suggests people, groups or keys as one types (data-picker names which; or
// data-picker-scope names the select that does). Each suggestion ends with its number, which the form submits.
const PICKED = ["user", "group", "key"];
const pickerKind = (field) => field.dataset.picker
  || (field.dataset.pickerScope && document.getElementById(field.dataset.pickerScope).value);
const pickerStatus = (field, text) => {
  const status = document.getElementById(field.getAttribute("aria-describedby"));
  if (status) status.textContent = text;
};
document.addEventListener("input", (event) => {
  const field = event.target;
  if (!(field instanceof HTMLInputElement) || !field.hasAttribute("list") || !pickerKind(field)) return;
  const kind = pickerKind(field);
  const text = field.value.trim();
  clearTimeout(field.pickerTimer);
  if (!PICKED.includes(kind) || text.length < 2 || /n°\s*\d+$/.test(text)) return;
  field.pickerTimer = setTimeout(async () => {
    const query = new URLSearchParams({ portee: kind, texte: text });
    const response = await fetch(`/ui/api/admin/sujets?${query}`, { credentials: "same-origin" });
    if (!response.ok) return;
    const found = (await response.json()).data;
    document.getElementById(field.getAttribute("list")).replaceChildren(...found.map((subject) => {
      const option = document.createElement("option");
      option.value = `${subject.label} · n° ${subject.id}`;
      return option;
    }));
    pickerStatus(field, found.length ? `${found.length} suggestion${found.length > 1 ? "s" : ""} : choisissez dans la liste.`
      : "Aucune correspondance.");
  }, 200);
});

// The quota form: the scope decides what the picker suggests (a role: the roles' names; the platform: no one).
document.addEventListener("change", (event) => {
  const select = event.target;
  const field = select.id && document.querySelector(`[data-picker-scope="${select.id}"]`);
  if (!field) return;
  field.value = "";
  pickerStatus(field, "");
  field.setAttribute("list", select.value === "role" ? "roles" : "sujets");
  field.disabled = select.value === "global";
});

// A quota preset fills the form with its figures (and its scope); the admin adjusts them before saving.
document.addEventListener("click", (event) => {
  const button = event.target.closest && event.target.closest("[data-quota-preset]");
  if (!button) return;
  const values = JSON.parse(button.dataset.quotaPreset);
  const form = button.form;
  const scope = form.elements.namedItem("scope");
  if (scope.value !== values.scope) {
    scope.value = values.scope;
    scope.dispatchEvent(new Event("change", { bubbles: true }));
  }
  for (const name of ["requests_per_minute", "requests_per_day", "tokens_per_minute", "budget_tokens", "budget_cost"]) {
    form.elements.namedItem(name).value = values[name] ?? "";
  }
  form.elements.namedItem("budget_period").value = values.budget_period;
  form.elements.namedItem("subject").focus();
});

// A zone files can be dropped on (the documents page, a conversation): onFiles gets them; the zone shows the hover.
window.socleDropZone = (zone, onFiles) => {
  zone.addEventListener("dragover", (event) => {
    if (!event.dataTransfer || !Array.from(event.dataTransfer.types).includes("Files")) return;
    event.preventDefault();
    zone.classList.add("socle-depot--survol");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("socle-depot--survol"));
  zone.addEventListener("drop", (event) => {
    if (!event.dataTransfer || !event.dataTransfer.files.length) return;
    event.preventDefault();
    zone.classList.remove("socle-depot--survol");
    onFiles(Array.from(event.dataTransfer.files));
  });
};
