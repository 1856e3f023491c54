"use strict";
// A fine-tuning job's page: while the job runs, its status, loss chart and events are fetched again every two
// seconds (HTML rendered and escaped by the server) and swapped in; once it has ended, the page is loaded again
// once, to offer what an ended job offers (trying and sharing the new model).
(() => {
  const zone = document.getElementById("suivi-zone");
  if (!zone) return;
  const running = () => {
    const shown = document.getElementById("suivi");
    return shown && shown.dataset.running === "oui";
  };
  const poll = async () => {
    try {
      const response = await fetch(zone.dataset.url, {headers: {accept: "text/html"}});
      if (response.ok) {
        const html = await response.text();
        const next = new DOMParser().parseFromString(html, "text/html").getElementById("suivi");
        const shown = document.getElementById("suivi");
        if (next && shown) {
          shown.replaceWith(document.importNode(next, true));
          if (next.dataset.running !== "oui") { window.location.reload(); return; }
        }
      }
    } catch (_) { /* the network blinked: try again */ }
    setTimeout(poll, 2000);
  };
  if (running()) setTimeout(poll, 2000);
})();
