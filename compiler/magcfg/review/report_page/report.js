// The matrix of magcfg report: rows live as JSON blocks (one per section) and become a
// table when their section is opened or a filter shows them, so large reports load fast.
(function () {
  "use strict";
  // Row flags, as in report.py.
  var DIFFERS = 1, RESTART = 2, ALLOWED = 4, CHANGED = 8, REDUNDANT = 16, SECRET = 32;
  var AUTO_OPEN = 1000;  // a filter opens its matching sections below this many rows
  var meta = JSON.parse(document.getElementById("magcfg-data").textContent);
  var envs = meta.environments, files = meta.files, layers = meta.layers;
  var sections = Array.prototype.slice.call(document.querySelectorAll("details.section"));
  var filterBox = document.getElementById("filter");
  var diffOnly = document.getElementById("diff-only");
  var status = document.getElementById("status");
  var parsed = {};
  var state = { pattern: null, diffOnly: false, generation: 0 };

  // A section's rows, decoded once: [key, flags, cells, allow-list entries], each cell
  // null (not set) or [value, file, line, layer, redundant, change, was].
  function rowsOf(number) {
    if (!(number in parsed)) {
      var details = sections[number];
      var name = details.dataset.name;
      parsed[number] = JSON.parse(document.getElementById("rows-" + number).textContent)
        .map(function (row) {
          var left = null;
          var cells = row[2].map(function (cell) {
            left = cell === 0 ? null : cell === 1 ? left : cell;
            return left;
          });
          return [row[0] ? name + "." + row[0] : name, row[1], cells, row[3] || []];
        });
    }
    return parsed[number];
  }

  // A key glob as magcfg reads it (keyglob.py): "*" within a segment, "**" any number of
  // segments, "\" escapes, and a pattern also covers every key below what it names.
  var CHAR = "(?:[^.\\\\]|\\\\.)";
  function escapeRe(text) { return text.replace(/[\\^$.*+?()[\]{}|\/-]/g, "\\$&"); }
  function globRegex(pattern) {
    var segments = [[]], i, c;
    for (i = 0; i < pattern.length; i++) {
      c = pattern[i];
      if (c === "\\") { segments[segments.length - 1].push(i + 1 < pattern.length ? pattern[++i] : "\\"); }
      else if (c === ".") { segments.push([]); }
      else if (c === "*") { segments[segments.length - 1].push(null); }
      else { segments[segments.length - 1].push(c); }
    }
    var parts = segments.map(function (segment) {
      if (segment.length === 2 && segment[0] === null && segment[1] === null) {
        return "(?:" + CHAR + "+\\.)*" + CHAR + "+";
      }
      return segment.map(function (ch) {
        if (ch === null) { return CHAR + "*"; }
        return escapeRe("\\.*".indexOf(ch) >= 0 ? "\\" + ch : ch);
      }).join("");
    });
    return new RegExp("^(?:" + parts.join("\\.") + ")(?:\\..*)?$", "s");
  }

  function shown(row) {
    if (state.diffOnly && !(row[1] & (DIFFERS | CHANGED))) { return false; }
    return state.pattern === null || state.pattern.test(row[0]);
  }

  function badge(cls, label, title) {
    var span = document.createElement("span");
    span.className = "badge " + cls;
    span.textContent = label;
    span.title = title;
    return span;
  }

  function cellOf(row, column) {
    var td = document.createElement("td");
    var cell = row[2][column];
    td.dataset.env = envs[column];
    if (cell === null) {
      td.className = "cell absent";
      td.textContent = "—";
      td.title = "not set in " + envs[column];
      return td;
    }
    var layer = cell[3];
    var classes = ["cell", layer >= 0 ? "layer-" + (layer % 8) : "absent"];
    var where = cell[1] >= 0 ? files[cell[1]] + (cell[2] ? ":" + cell[2] : "") : "";
    var title = [where + (layer >= 0 ? " (" + layers[layer] + ")" : "")];
    if (cell[4]) { classes.push("redundant"); title.push("override repeats the value below"); }
    if (cell[5]) {
      classes.push(cell[5]);
      title.push(cell[5] === "added" ? "added since " + meta.against
                                     : "was " + cell[6] + " at " + meta.against);
    }
    td.className = classes.join(" ");
    td.dataset.layer = layer >= 0 ? layers[layer] : "";
    td.textContent = cell[0];
    td.title = cell[0] + "\n" + title.join("\n");
    return td;
  }

  function rowElement(row) {
    var tr = document.createElement("tr");
    var key = document.createElement("td");
    var marks = document.createElement("td");
    tr.className = "row";
    tr.dataset.key = row[0];
    key.className = "key";
    key.textContent = row[0];
    tr.appendChild(key);
    for (var column = 0; column < envs.length; column++) { tr.appendChild(cellOf(row, column)); }
    marks.className = "markers";
    if (row[1] & DIFFERS) { marks.appendChild(badge("differs", "≠ differs", "the value differs between environments")); }
    if (row[1] & CHANGED) { marks.appendChild(badge("changed", "Δ changed", "changed against " + meta.against)); }
    if (row[1] & REDUNDANT) { marks.appendChild(badge("redundant", "= redundant", "an override repeats the value below it: remove it")); }
    if (row[1] & RESTART) { marks.appendChild(badge("restart", "restart", "restart-only: a change is not hot-applied")); }
    if (row[1] & ALLOWED) { marks.appendChild(badge("allowed", "allowed", "differs by design (promote.allow_differences): " + row[3].join(", "))); }
    if (row[1] & SECRET) { marks.appendChild(badge("secret", "secret", "a secret: shown as its reference")); }
    tr.appendChild(marks);
    return tr;
  }

  function render(details) {
    var holder = details.querySelector(".rows");
    if (!details.open) { return; }
    if (details.dataset.generation === String(state.generation)) { return; }
    details.dataset.generation = String(state.generation);
    var table = document.createElement("table");
    var head = document.createElement("tr");
    ["Key"].concat(envs, ["Markers"]).forEach(function (name) {
      var th = document.createElement("th");
      th.textContent = name;
      head.appendChild(th);
    });
    table.createTHead().appendChild(head);
    var body = table.createTBody();
    rowsOf(details.dataset.section).forEach(function (row) {
      if (shown(row)) { body.appendChild(rowElement(row)); }
    });
    holder.replaceChildren(table);
  }

  function update() {
    var text = filterBox.value.trim();
    state.pattern = text ? globRegex(text) : null;
    state.diffOnly = diffOnly.checked;
    state.generation += 1;
    var narrowing = state.pattern !== null || state.diffOnly;
    var total = 0, counts = [];
    sections.forEach(function (details) {
      var rows = rowsOf(details.dataset.section);
      var n = narrowing ? rows.filter(shown).length : rows.length;
      counts.push(n);
      total += n;
    });
    sections.forEach(function (details, i) {
      var all = rowsOf(details.dataset.section).length;
      details.hidden = counts[i] === 0;
      details.querySelector(".count").textContent = narrowing ? counts[i] + " of " + all : String(all);
      if (narrowing && counts[i] > 0 && total <= AUTO_OPEN) { details.open = true; }
      render(details);
    });
    status.textContent = narrowing ? total + " keys shown" : "";
  }

  sections.forEach(function (details) {
    details.addEventListener("toggle", function () { render(details); });
    render(details);
  });
  filterBox.addEventListener("input", update);
  diffOnly.addEventListener("change", update);
  document.body.dataset.ready = "true";
}());
