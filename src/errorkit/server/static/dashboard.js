// errorkit tracker: refresh the issues list in place every 15 s while the tab is visible.
// The rows come from the server already rendered (and escaped); ticked boxes stay ticked.
(function () {
  "use strict";
  var rows = document.getElementById("issue-rows");
  if (!rows) return;
  var every = 15000;
  function refresh() {
    if (document.hidden) return;
    var url = rows.getAttribute("data-refresh") + window.location.search;
    fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (answer) {
        if (answer.status === 401) { window.location.reload(); return null; }
        return answer.ok ? answer.text() : null;
      })
      .then(function (html) {
        if (html === null || html === undefined) return;
        var ticked = {};
        rows.querySelectorAll("input[name=ids]:checked").forEach(function (box) {
          ticked[box.value] = true;
        });
        rows.innerHTML = html;
        rows.querySelectorAll("input[name=ids]").forEach(function (box) {
          if (ticked[box.value]) box.checked = true;
        });
        var first = rows.querySelector("tr[data-total]");
        var count = document.getElementById("issue-count");
        if (count) count.textContent = first ? first.getAttribute("data-total") : "0";
        rows.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () { /* offline for a moment: try again next time */ });
  }
  window.setInterval(refresh, every);
  document.addEventListener("visibilitychange", refresh);
  window.errorkitRefresh = refresh;
})();
