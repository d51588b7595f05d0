// Refreshes the dashboard's tiles in place every few seconds (no full reload: the page keeps
// its scroll position and keyboard focus). A refresh is skipped while the focus is inside the
// tiles, so tabbing through them is never interrupted; a failed fetch keeps the old figures.
(function () {
  "use strict";
  var tiles = document.getElementById("tiles");
  if (!tiles) { return; }
  var seconds = parseInt(tiles.getAttribute("data-refresh"), 10) || 10;
  var source = tiles.getAttribute("data-src");
  function refresh() {
    if (document.hidden || tiles.contains(document.activeElement)) { return; }
    fetch(source, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (answer) {
        if (answer.redirected || !answer.ok) { throw new Error("not refreshed"); }
        return answer.text();
      })
      .then(function (html) {
        if (!tiles.contains(document.activeElement)) {
          tiles.innerHTML = html;
          tiles.setAttribute("data-refreshed", String(Date.now()));
        }
      })
      .catch(function () { /* keep the figures shown; try again next time */ });
  }
  window.setInterval(refresh, seconds * 1000);
}());
