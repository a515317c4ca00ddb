// Reload the page every data-refresh seconds while it is visible, unless the person is
// typing in a form or has unticked "refresh". The choice is remembered in localStorage.
(function () {
  var seconds = Number(document.body.dataset.refresh || 0);
  var box = document.getElementById("autorefresh");
  if (box) {
    box.checked = localStorage.getItem("steadyhand-refresh") !== "off";
    box.addEventListener("change", function () {
      localStorage.setItem("steadyhand-refresh", box.checked ? "on" : "off");
    });
  }
  if (!seconds) return;
  setInterval(function () {
    if ((box && !box.checked) || document.hidden) return;
    var el = document.activeElement;
    if (el && /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(el.tagName) && el.id !== "autorefresh") return;
    location.reload();
  }, seconds * 1000);
})();
