/* The report's behaviour, offline: maps drawn near the viewport, the collapsible tree,
   search by id with the row highlighted on every map of its path, CSV downloads built from
   the embedded rows. Every string from the data is set as text, never parsed as HTML. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("rc-rows").textContent);

  function decode(text, Type) {
    var bytes = Uint8Array.from(atob(text), function (c) { return c.charCodeAt(0); });
    return new Type(bytes.buffer);
  }
  var leafOf = decode(data.leaf, Int32Array);
  var confidence = decode(data.confidence, Float32Array);
  var noise = decode(data.noise, Uint8Array);
  var levelX = data.x.map(function (t) { return decode(t, Float32Array); });
  var levelY = data.y.map(function (t) { return decode(t, Float32Array); });
  var rowOfId = null;
  var highlighted = null;  // the row found by search

  function escapeHtml(text) {  // plotly renders hover text as HTML
    return String(text).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }
  function leafPath(row) { return data.leaves[leafOf[row]]; }
  function hoverText(row) {
    var name = data.names[leafOf[row]];
    return "id: " + escapeHtml(data.ids[row]) + "<br>leaf: " + escapeHtml(leafPath(row)) +
      (name ? " · " + escapeHtml(name) : "") + "<br>confidence: " + confidence[row].toFixed(2);
  }

  /* -- maps: drawn while near the viewport (browsers keep ~16 WebGL contexts) ------------ */
  function highlightTrace(div) {
    if (highlighted === null) { return null; }
    var node = div.dataset.node, row = highlighted, x, y;
    if (node) {
      var path = leafPath(row);
      if (path !== node && path.indexOf(node + ".") !== 0) { return null; }
      var level = node.split(".").length - 1;
      x = levelX[level][row]; y = levelY[level][row];
    } else {
      x = levelX[0][row]; y = levelY[0][row];
    }
    if (isNaN(x)) { return null; }
    return {x: [x], y: [y], type: "scattergl", mode: "markers", name: "found: " +
      escapeHtml(data.ids[row]), hoverinfo: "name", showlegend: true,
      marker: {size: 16, color: "rgba(0,0,0,0)", line: {width: 3, color: "#000"}}};
  }
  function draw(div) {
    var spec = JSON.parse(document.getElementById(div.dataset.spec).textContent);
    spec.data.forEach(function (trace) {
      if (trace.customdata) { trace.text = trace.customdata.map(hoverText); }
    });
    var mark = highlightTrace(div);
    if (mark) { spec.data.push(mark); }
    Plotly.newPlot(div, spec.data, spec.layout, {responsive: true, displaylogo: false});
    div.dataset.drawn = "1";
    if (!div.dataset.node) {
      div.on("plotly_click", function (event) {
        var point = event.points[0];
        if (point && point.customdata !== undefined) { openLeaf(leafPath(point.customdata)); }
      });
    }
  }
  var observer = new IntersectionObserver(function (entries) {
    entries.forEach(function (entry) {
      var div = entry.target;
      if (entry.isIntersecting && !div.dataset.drawn) {
        draw(div);
      } else if (!entry.isIntersecting && div.dataset.drawn) {
        Plotly.purge(div);
        delete div.dataset.drawn;
      }
    });
  }, {rootMargin: "400px 0px"});
  var maps = Array.prototype.slice.call(document.querySelectorAll("div.rc-map"));
  maps.forEach(function (div) { observer.observe(div); });
  function redrawMaps() {
    maps.forEach(function (div) {
      if (div.dataset.drawn) { Plotly.purge(div); draw(div); }
    });
  }

  /* -- the collapsible tree ---------------------------------------------------------------- */
  var treeRows = Array.prototype.slice.call(document.querySelectorAll("table.tree tbody tr"));
  function setOpen(path, open) {
    treeRows.forEach(function (tr) {
      if (tr.dataset.path === path) {
        var button = tr.querySelector("button.toggle");
        if (button) {
          button.setAttribute("aria-expanded", open ? "true" : "false");
          button.textContent = open ? "▾" : "▸";
        }
      }
    });
    refreshTree();
  }
  function isOpen(path) {
    var row = treeRows.filter(function (tr) { return tr.dataset.path === path; })[0];
    var button = row && row.querySelector("button.toggle");
    return !button || button.getAttribute("aria-expanded") === "true";
  }
  function refreshTree() {
    treeRows.forEach(function (tr) {
      var parent = tr.dataset.parent, visible = true;
      while (parent) {
        if (!isOpen(parent)) { visible = false; break; }
        var up = treeRows.filter(function (r) { return r.dataset.path === parent; })[0];
        parent = up ? up.dataset.parent : "";
      }
      tr.classList.toggle("hidden", !visible);
    });
  }
  treeRows.forEach(function (tr) {
    var button = tr.querySelector("button.toggle");
    if (button) {
      button.addEventListener("click", function () {
        setOpen(tr.dataset.path, button.getAttribute("aria-expanded") !== "true");
      });
    }
  });
  function setAll(open) {
    treeRows.forEach(function (tr) {
      var button = tr.querySelector("button.toggle");
      if (button) {
        button.setAttribute("aria-expanded", open ? "true" : "false");
        button.textContent = open ? "▾" : "▸";
      }
    });
    refreshTree();
  }
  document.getElementById("rc-expand-all").addEventListener("click", function () { setAll(true); });
  document.getElementById("rc-collapse-all").addEventListener("click", function () { setAll(false); });

  function ancestors(path) {
    var parts = path.split("."), out = [];
    for (var i = 1; i < parts.length; i++) { out.push(parts.slice(0, i).join(".")); }
    return out;
  }
  function openLeaf(path) {
    ancestors(path).forEach(function (node) { setOpen(node, true); });
    var target = document.getElementById("card-" + path) || document.getElementById("node-" + path);
    if (target) { target.scrollIntoView(); history.replaceState(null, "", "#" + target.id); }
  }

  /* -- search by id ------------------------------------------------------------------------ */
  var result = document.getElementById("rc-search-result");
  document.getElementById("rc-search").addEventListener("submit", function (event) {
    event.preventDefault();
    var wanted = document.getElementById("rc-search-id").value.trim();
    if (rowOfId === null) {
      rowOfId = new Map();
      data.ids.forEach(function (id, row) { rowOfId.set(id, row); });
    }
    result.textContent = "";
    treeRows.forEach(function (tr) { tr.classList.remove("found"); });
    if (!rowOfId.has(wanted)) {
      highlighted = null;
      result.textContent = "No row has the id " + JSON.stringify(wanted) + ".";
      redrawMaps();
      return;
    }
    var row = rowOfId.get(wanted), path = leafPath(row), name = data.names[leafOf[row]];
    highlighted = row;
    result.appendChild(document.createTextNode(data.idColumn + " " + wanted + " → "));
    ancestors(path).concat([path]).forEach(function (step, index) {
      if (index) { result.appendChild(document.createTextNode(" › ")); }
      var link = document.createElement("a");
      link.href = "#" + (document.getElementById("node-" + step) ? "node-" : "card-") + step;
      link.textContent = step;
      result.appendChild(link);
    });
    result.appendChild(document.createTextNode(
      (name ? " (" + name + ")" : "") + " · confidence " + confidence[row].toFixed(2) +
      (noise[row] ? " · noise" : "") + " · highlighted on the maps of its path"));
    ancestors(path).forEach(function (node) { setOpen(node, true); });
    treeRows.forEach(function (tr) {
      if (tr.dataset.path === path || ancestors(path).indexOf(tr.dataset.path) >= 0) {
        tr.classList.add("found");
      }
    });
    redrawMaps();
  });

  /* -- downloads: CSV built from the embedded rows, offline -------------------------------- */
  function csvCell(value) {
    var text = String(value);
    if (/^[=+\-@\t\r]/.test(text)) { text = "'" + text; }  // no formulas in spreadsheets
    return /[",\n\r]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }
  function download(node) {
    var header = [data.idColumn, "leaf_path", "leaf_name", "confidence", "is_noise"];
    var level = node ? node.split(".").length - 1 : 0;
    if (node) { header.push("x", "y"); }
    var lines = [header.map(csvCell).join(",")];
    for (var row = 0; row < data.ids.length; row++) {
      var path = leafPath(row);
      if (node && path !== node && path.indexOf(node + ".") !== 0) { continue; }
      var cells = [data.ids[row], path, data.names[leafOf[row]], confidence[row].toFixed(4),
        noise[row] ? "true" : "false"];
      if (node) { cells.push(levelX[level][row], levelY[level][row]); }
      lines.push(cells.map(csvCell).join(","));
    }
    var blob = new Blob([lines.join("\n") + "\n"], {type: "text/csv"});
    var link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = (node ? "node_" + node : "assignments") + ".csv";
    document.body.appendChild(link);
    link.click();
    setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
  }
  Array.prototype.forEach.call(document.querySelectorAll("button.download"), function (button) {
    button.addEventListener("click", function () { download(button.dataset.node); });
  });
})();
