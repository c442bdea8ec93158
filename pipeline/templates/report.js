(function () {
  var player = document.getElementById("player");
  var items = document.querySelectorAll("[data-segment]");

  var now = document.getElementById("now");

  // Highlight one segment's row and span, and say under the player what it holds.
  function mark(index) {
    items.forEach(function (el) {
      el.classList.toggle("current", el.getAttribute("data-segment") === String(index));
    });
    var row = document.querySelector('#segments tr[data-segment="' + index + '"]');
    if (now && row) {
      now.textContent = "Segment " + index + ": " + row.getAttribute("data-summary");
    }
  }

  // Seek the player to a segment's start and play it; record where it landed.
  function show(el) {
    var index = el.getAttribute("data-segment");
    mark(index);
    history.replaceState(null, "", "#segment=" + index);
    if (!player) return;
    player.currentTime = parseFloat(el.getAttribute("data-start"));
    var playing = player.play();
    if (playing && playing.catch) playing.catch(function () {});
  }

  function onClick(event) {
    var el = event.target.closest("[data-segment]");
    if (el) show(el);
  }
  document.getElementById("segments").addEventListener("click", onClick);
  document.getElementById("timeline").addEventListener("click", onClick);

  if (player) {
    player.addEventListener("seeked", function () {
      player.setAttribute("data-seeked-to", player.currentTime.toFixed(3));
    });
    player.addEventListener("timeupdate", function () {
      var t = player.currentTime;
      document.querySelectorAll("#segments tr[data-segment]").forEach(function (row) {
        if (t >= parseFloat(row.dataset.start) && t < parseFloat(row.dataset.end)) {
          mark(row.dataset.segment);
        }
      });
    });
    player.addEventListener("error", function () {
      player.hidden = true;
      document.getElementById("videoerror").hidden = false;
    });
  }

  // A link to report.html#segment=N opens the report on segment N, as if its row was clicked.
  var wanted = /^#segment=(\d+)$/.exec(location.hash);
  var row = wanted && document.querySelector('#segments tr[data-segment="' + wanted[1] + '"]');
  if (row) { row.scrollIntoView({block: "nearest"}); row.click(); }
})();
