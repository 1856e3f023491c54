"use strict";
// Forms that destroy something ask first (data-confirm holds the question).
document.addEventListener("submit", (event) => {
  const question = event.target.dataset && event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
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
