// treadle web UI: the little behaviour htmx does not cover.
// - follows a task's log over Server-Sent Events, resuming after the last chunk on reconnect;
// - dismisses flash messages; navigates on <select data-navigate>.
(function () {
  "use strict";

  function followLog(pre) {
    var url = pre.getAttribute("data-log-stream");
    var after = pre.getAttribute("data-after") || "0";
    var attempt = pre.getAttribute("data-attempt") || "";
    var state = document.querySelector("[data-log-state]");
    var source = null;
    var stopped = false;

    function atBottom() {
      return pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
    }
    function open() {
      if (stopped || !document.body.contains(pre)) return;
      var query = "?after=" + encodeURIComponent(after) +
        (attempt ? "&attempt=" + encodeURIComponent(attempt) : "");
      source = new EventSource(url + query);
      source.addEventListener("log", function (event) {
        var stick = atBottom();
        pre.insertAdjacentHTML("beforeend", event.data);
        // The id is "<last chunk id>/<its attempt id>": where to resume after a reconnect.
        if (event.lastEventId) {
          var cut = event.lastEventId.indexOf("/");
          after = event.lastEventId.slice(0, cut);
          attempt = event.lastEventId.slice(cut + 1);
        }
        if (stick) pre.scrollTop = pre.scrollHeight;
      });
      source.addEventListener("end", function (event) {
        stopped = true;
        source.close();
        pre.setAttribute("data-done", "true");
        if (state) state.textContent = "finished (" + event.data + ")";
      });
      source.onerror = function () {
        // Reconnect ourselves so the resume point is ours, not the browser's.
        source.close();
        if (!stopped) window.setTimeout(open, 1000);
      };
    }
    open();
    pre.scrollTop = pre.scrollHeight;
  }

  function start() {
    var pre = document.querySelector("pre[data-log-stream]");
    if (pre && pre.getAttribute("data-done") !== "true") followLog(pre);
    document.addEventListener("click", function (event) {
      var target = event.target;
      if (target && target.matches && target.matches("[data-dismiss]")) {
        var box = target.closest(".flash");
        if (box) box.remove();
      }
    });
    document.querySelectorAll("select[data-navigate]").forEach(function (select) {
      select.addEventListener("change", function () {
        window.location.href = select.getAttribute("data-navigate") + encodeURIComponent(select.value);
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
