"""``magcfg report --html``: the page's data, its bytes, and the page in real Chromium."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from magcfg.keyglob import KeyGlobs
from magcfg.project import load_project
from magcfg.review import report as reports
from magcfg.review.diff import Origins, flatten
from magcfg.review.report import build_report

from ..conftest import Project, calls, dies_in_a_child, failed_cleanly, tree_state
from .chromium import Browser, run_chromium
from .promotion_repo import git, make_repo

# Secret *values* that must never reach the page: the value of an env:// reference's
# variable in the environment of the run, and a literal under a `redact:` glob.
ENV_CANARY = "CANARY_envvalue_88aa3b"
LITERAL_CANARY = "CANARY_literal_5e1d90"
VALUE_CANARIES = (ENV_CANARY, LITERAL_CANARY)
RUN_ENV = {"SHOP_DB_PASSWORD": ENV_CANARY}


@pytest.fixture
def shop(tmp_path: Path) -> Project:
    """The three-environment shop repository, committed, with a redundant override, an
    env:// secret and a literal under a ``redact:`` glob."""
    project = make_repo(tmp_path / "shop")
    project.write("magcfg.yaml", (project.root / "magcfg.yaml").read_text()
                  .replace("redact: [db.user]", "redact: [db.user, app.name]"))
    project.write("layers/base/app.yaml",
                  f"app:\n  name: \"{LITERAL_CANARY}\"\n  debug: false\n")
    project.write("layers/secrets/dev/db.yaml", "db:\n  password: \"env://SHOP_DB_PASSWORD\"\n")
    project.write("layers/environments/staging/db.yaml",
                  "db:\n  host: \"db.staging.internal\"\n  port: 5432\n  pool:\n    max: 15\n")
    assert project.run("build").returncode == 0
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "Report fixture")
    return project


def report(project: Project, out: Path, *args: str) -> bytes:
    done = project.run("report", "--html", str(out), *args, env=RUN_ENV)
    assert done.returncode == 0, done.stderr
    return out.read_bytes()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    b = Browser()
    try:
        yield b
    finally:
        b.close()


def rows(b: Browser) -> dict[str, dict[str, Any]]:
    """The rendered matrix: key -> {env: {text, layer, classes, title, background}, marks}."""
    result: dict[str, dict[str, Any]] = b.eval("""(() => {
      const out = {};
      for (const tr of document.querySelectorAll("tr.row")) {
        const cells = {};
        for (const td of tr.querySelectorAll("td.cell")) {
          cells[td.dataset.env] = {text: td.textContent, layer: td.dataset.layer || "",
            classes: td.className, title: td.title,
            background: getComputedStyle(td).backgroundColor};
        }
        const marks = [...tr.querySelectorAll(".badge")].map(b => b.classList[1]);
        out[tr.dataset.key] = {cells, marks};
      }
      return out;
    })()""")
    return result


# ------------------------------------------------------------------ the page in Chromium


def test_matrix_cells_layers_and_markers(shop: Project, browser: Browser) -> None:
    out = shop.root / "report.html"
    report(shop, out)
    browser.open(out.as_uri())
    assert browser.eval("document.body.dataset.ready") == "true"
    shown = rows(browser)
    config = json.loads((shop.root / "generated/production/config.json").read_text())
    assert set(shown) >= {".".join(k) for k in flatten(config)}

    pool = shown["db.pool.max"]
    assert {env: c["text"] for env, c in pool["cells"].items()} == {
        "dev": "20", "staging": "15", "production": "50"}
    assert pool["cells"]["production"]["layer"] == "environment"
    assert "layers/environments/production/db.yaml:6 (environment)" in \
        pool["cells"]["production"]["title"]
    assert set(pool["marks"]) == {"differs"}  # db.pool is hot-reloadable
    host = shown["db.host"]
    assert host["cells"]["dev"]["layer"] == "base"
    assert "layers/base/db.yaml:3 (base)" in host["cells"]["dev"]["title"]
    assert {"differs", "restart"} <= set(host["marks"])
    assert "allowed" in shown["app.environment"]["marks"]
    assert "allowed" in shown["app.debug"]["marks"]  # dev: [app.debug]
    assert "allowed" not in shown["db.host"]["marks"]
    assert "restart" not in shown["logging.level"]["marks"]
    # The repeated port in staging is a redundant override, marked on that cell only.
    port = shown["db.port"]
    assert "redundant" in port["cells"]["staging"]["classes"]
    assert "redundant" not in port["cells"]["dev"]["classes"]
    assert "redundant" in port["marks"] and "differs" not in port["marks"]
    # Secrets: the reference, and the redaction marker for a literal under a glob.
    password = shown["db.password"]["cells"]
    assert password["dev"]["text"] == '"env://SHOP_DB_PASSWORD"'
    assert password["production"]["text"] == '"vault://secret/k3s/shop#db_password_production"'
    assert password["production"]["layer"] == "secrets"
    assert shown["app.name"]["cells"]["dev"]["text"] == "<redacted>"

    # Colours by layer: each cell's background is its layer's colour in the legend, and
    # the layers' colours differ.
    legend = browser.eval("""Object.fromEntries([...document.querySelectorAll(
        ".legend [data-layer]")].map(e => [e.dataset.layer, getComputedStyle(e).backgroundColor]))""")
    assert set(legend) == {"base", "environment", "secrets"}
    assert len(set(legend.values())) == 3
    for row in shown.values():
        for cell in row["cells"].values():
            if cell["layer"]:
                assert cell["background"] == legend[cell["layer"]], cell
    # Self-contained: the page asked the network for nothing but itself.
    assert browser.requests() == [out.as_uri()]


def visible_keys(b: Browser) -> list[str]:
    keys: list[str] = b.eval("""[...document.querySelectorAll("details.section:not([hidden])")]
        .filter(d => d.open).flatMap(d => [...d.querySelectorAll("tr.row")])
        .map(tr => tr.dataset.key)""")
    return keys


@pytest.mark.parametrize("pattern", ["db.pool", "db.*.max", "**.ca*", "*.environment", "logging"])
def test_filter_box_is_a_key_glob(shop: Project, browser: Browser, pattern: str) -> None:
    out = shop.root / "report.html"
    report(shop, out)
    browser.open(out.as_uri())
    every = visible_keys(browser)
    browser.type_into("#filter", pattern)
    globs = KeyGlobs([pattern])
    expected = sorted(k for k in every if globs.matches(tuple(k.split("."))))
    assert expected, pattern
    assert sorted(visible_keys(browser)) == expected
    assert browser.eval("document.getElementById('status').textContent") == \
        f"{len(expected)} keys shown"
    # Sections without a match are hidden; clearing the box brings every row back.
    assert browser.eval("[...document.querySelectorAll('details.section:not([hidden])')]"
                        ".map(d => d.dataset.name)") == sorted({k.split(".")[0] for k in expected})
    browser.type_into("#filter", "")
    assert visible_keys(browser) == every


def test_differences_only_switch(shop: Project, browser: Browser) -> None:
    out = shop.root / "report.html"
    report(shop, out)
    browser.open(out.as_uri())
    shown = rows(browser)
    differing = sorted(k for k, r in shown.items() if "differs" in r["marks"])
    assert "db.pool.max" in differing and "db.port" not in differing
    browser.click("#diff-only")
    assert browser.eval("document.getElementById('diff-only').checked") is True
    assert sorted(visible_keys(browser)) == differing
    browser.type_into("#filter", "db")
    assert sorted(visible_keys(browser)) == [k for k in differing if k.startswith("db.")]
    browser.click("#diff-only")
    browser.type_into("#filter", "")
    assert sorted(visible_keys(browser)) == sorted(shown)


def test_against_a_ref_lists_and_highlights_changes(shop: Project, browser: Browser) -> None:
    shop.write("layers/environments/production/db.yaml",
               "db:\n  host: \"db.prod.internal\"\n  pool:\n    max: 60\n"
               "  replicas: [\"r1.prod\", \"r2.prod\"]\n  tls:\n    ca_check: true\n")
    shop.write("layers/secrets/staging/db.yaml",
               "db:\n  password: \"vault://secret/k3s/shop#rotated\"\n")
    out = shop.root / "report.html"
    report(shop, out, "--against", "HEAD")
    expected = set()
    for env in ("dev", "staging", "production"):
        done = shop.run("diff", "--env", env, "--against", "HEAD", "--format", "json")
        doc = json.loads(done.stdout)
        for kind in ("added", "changed", "removed"):
            expected |= {(env, kind, c["key"], json.dumps(c["new"]) if c["new"] is not None
                          else "—") for c in doc[kind]}
    assert {(e, k) for e, _, k, _ in expected} == {
        ("production", "db.pool.max"), ("production", "db.tls.ca_check"),
        ("staging", "db.password")}
    browser.open(out.as_uri())
    listed = browser.eval("""[...document.querySelectorAll("#changes tbody tr")].map(tr =>
        [tr.cells[0].textContent, tr.className, tr.cells[2].textContent, tr.cells[4].textContent])""")
    assert {tuple(x) for x in listed} == {
        (e, kind, key, new.replace('"<redacted>"', "<redacted>")) for e, kind, key, new in expected}
    shown = rows(browser)
    assert "changed" in shown["db.pool.max"]["cells"]["production"]["classes"]
    assert "was 50 at HEAD" in shown["db.pool.max"]["cells"]["production"]["title"]
    assert "changed" not in shown["db.pool.max"]["cells"]["staging"]["classes"]
    assert "added" in shown["db.tls.ca_check"]["cells"]["production"]["classes"]
    assert "changed" in shown["db.password"]["marks"]
    # The rotated reference is shown; what it was is not spelled out in the page.
    assert shown["db.password"]["cells"]["staging"]["text"] == \
        '"vault://secret/k3s/shop#rotated"'


def test_dump_dom_renders_rows_without_secret_values(shop: Project) -> None:
    out = shop.root / "report.html"
    page = report(shop, out, "--against", "HEAD")
    done = run_chromium("--dump-dom", out.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert 'class="row"' in dom and 'data-key="db.pool.max"' in dom
    assert "env://SHOP_DB_PASSWORD" in dom and "&lt;redacted&gt;" in dom
    for canary in VALUE_CANARIES:
        assert canary not in dom
        assert canary.encode() not in page


def test_the_browser_leaves_nothing_behind(
        shop: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither the throwaway profile nor Chromium's own files under TMPDIR (a singleton
    socket directory it leaves when stopped) outlive a page test's browser. The
    directory's path is short: Chromium's socket there must fit a Unix socket address."""
    temp = Path(tempfile.mkdtemp(prefix="mc-"))
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", None)
    out = shop.root / "report.html"
    report(shop, out)
    b = Browser()
    try:
        b.open(out.as_uri())
        assert b.eval("document.body.dataset.ready") == "true"
        assert list(temp.iterdir())  # the profile, while it runs
    finally:
        b.close()
    assert list(temp.iterdir()) == []
    temp.rmdir()


def open_without_markup(shop: Project, browser: Browser, hostile: str) -> None:
    """Write the page, hold that ``hostile`` (which closes the data's script and opens an
    element ``#injected``) is nowhere in its bytes, and open it: nothing was injected."""
    out = shop.root / "report.html"
    assert hostile.encode() not in report(shop, out)
    browser.open(out.as_uri())
    assert browser.eval("document.body.dataset.ready") == "true"
    assert browser.eval("document.getElementById('injected')") is None


def test_values_are_text_never_markup(shop: Project, browser: Browser) -> None:
    hostile = '</script><b id="injected">@ROWS@</b><!--'
    shop.write("layers/environments/staging/db.yaml",
               f"db:\n  tls:\n    mode: {json.dumps(hostile)}\n")
    open_without_markup(shop, browser, hostile)
    assert rows(browser)["db.tls.mode"]["cells"]["staging"]["text"] == json.dumps(hostile)


def test_file_names_are_text_never_markup(shop: Project, browser: Browser) -> None:
    # The page lists every layer file of its environments, a file whose values every
    # environment overrides (as this one's) included.
    hostile = '</script><b id="injected">x</b><!--'
    shop.write(f"layers/base/{hostile}.yaml", 'app:\n  environment: "dev"\n')
    open_without_markup(shop, browser, hostile)
    files = browser.eval(
        "JSON.parse(document.getElementById('magcfg-data').textContent).files")
    assert f"layers/base/{hostile}.yaml" in files


def test_readme_shows_the_screenshot_of_the_bundled_report() -> None:
    repo = Path(__file__).resolve().parents[2]
    assert "![The bundled repository's report](docs/report.png)" in \
        (repo / "README.md").read_text()
    assert (repo / "docs/report.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


# ------------------------------------------------------------------ the bytes


def test_same_inputs_same_bytes_anywhere(shop: Project, tmp_path: Path) -> None:
    first = report(shop, tmp_path / "a.html", "--against", "HEAD")
    again = report(shop, tmp_path / "b.html", "--against", "HEAD")
    assert first == again
    moved = tmp_path / "elsewhere" / "shop"
    shutil.copytree(shop.root, moved, symlinks=True)
    assert report(Project(moved), tmp_path / "c.html", "--against", "HEAD") == first
    assert str(tmp_path).encode() not in first


def test_two_processes_write_the_same_page(
        shop: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_DB_PASSWORD", ENV_CANARY)
    project = load_project(shop.root / "magcfg.yaml")
    one = build_report(project, against="HEAD", jobs=1)
    monkeypatch.setattr(reports, "MIN_PARALLEL_ROWS", 0)
    parent = os.getpid()
    here: list[str] = []  # the top-level keys whose sections this process wrote
    real = reports._Matrix.sections

    def counted(self: reports._Matrix, keys: list[str]) -> list[Any]:
        if os.getpid() == parent:
            here.extend(keys)
        return real(self, keys)

    monkeypatch.setattr(reports._Matrix, "sections", counted)
    two = build_report(project, against="HEAD", jobs=2)
    assert two == one and one.sections >= 2
    assert 0 < len(here) < one.sections  # the other sections were written elsewhere
    assert not any(c.encode() in two.html for c in VALUE_CANARIES)


def test_a_filling_process_that_dies_is_made_up_for(
        shop: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project = load_project(shop.root / "magcfg.yaml")
    one = build_report(project, jobs=1)
    monkeypatch.setattr(reports, "MIN_PARALLEL_ROWS", 0)
    dies_in_a_child(monkeypatch, Origins, "of")
    assert build_report(project, jobs=2) == one


def test_key_lines_a_forked_process_read_are_kept(
        shop: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from magcfg.syntax import keylines

    monkeypatch.setattr(reports, "MIN_PARALLEL_ROWS", 0)
    first = build_report(load_project(shop.root / "magcfg.yaml"), jobs=2)
    indexed = calls(monkeypatch, keylines, "_index_simple")
    assert build_report(load_project(shop.root / "magcfg.yaml"), jobs=1) == first
    assert indexed == []


def test_page_is_self_contained(shop: Project, tmp_path: Path) -> None:
    page = report(shop, tmp_path / "r.html").decode()
    assert "default-src 'none'" in page  # the page itself forbids any fetch
    for needle in ("http://", "https://", "<link", "@import", "src="):
        assert needle not in page.replace("http://www.w3.org", ""), needle


def test_bundled_report_is_small(bundled: Project, tmp_path: Path) -> None:
    page = report(bundled, tmp_path / "r.html")
    assert len(page) < 200_000
    result = build_report(load_project(bundled.root / "magcfg.yaml"))
    assert result.html == page
    assert result.keys > 100 and result.environments == ("dev", "staging", "production")


# ------------------------------------------------------------------ bad input


def test_html_to_a_directory_is_a_usage_error(shop: Project) -> None:
    (shop.root / "out").mkdir()
    before = tree_state(shop.root)
    done = shop.run("report", "--html", "out")
    assert failed_cleanly(done, 2).strip() == "error: --html out: is a directory; give a file name"
    assert tree_state(shop.root) == before


def test_html_in_a_missing_directory_is_a_usage_error(shop: Project) -> None:
    before = tree_state(shop.root)
    done = shop.run("report", "--html", "nowhere/r.html")
    assert failed_cleanly(done, 2).strip() == \
        "error: --html nowhere/r.html: directory nowhere does not exist"
    assert tree_state(shop.root) == before


def test_html_to_a_fifo_is_refused(shop: Project) -> None:
    import os

    os.mkfifo(shop.root / "pipe")
    before = tree_state(shop.root)
    done = shop.run("report", "--html", "pipe")
    assert failed_cleanly(done, 2).strip() == "error: --html pipe: not a regular file"
    assert tree_state(shop.root) == before


def test_a_bad_ref_writes_nothing(shop: Project) -> None:
    (shop.root / "r.html").write_text("old page")
    before = tree_state(shop.root)
    done = shop.run("report", "--html", "r.html", "--against", "no-such-ref")
    err = failed_cleanly(done, 2)
    assert "no-such-ref" in err
    assert tree_state(shop.root) == before


def test_a_broken_layer_is_located_and_writes_nothing(shop: Project) -> None:
    (shop.root / "r.html").write_text("old page")
    shop.write("layers/environments/staging/db.yaml", "db:\n  port: \"not a number\"\n")
    before = tree_state(shop.root)
    done = shop.run("report", "--html", "r.html")
    err = failed_cleanly(done, 1)
    assert "layers/environments/staging/db.yaml:2: error:" in err and "[db.port]" in err
    assert tree_state(shop.root) == before


def test_the_promotion_pr_body_links_to_the_published_report(shop: Project) -> None:
    import yaml

    from magcfg.review.promote import REPORT_ARTIFACT

    body = shop.root.parent / "pr.md"
    # The link is given where the project's CI publishes the page, as magcfg's own does.
    ci_file = Path(__file__).resolve().parents[2] / ".woodpecker.yml"
    (shop.root / ".woodpecker.yml").write_bytes(ci_file.read_bytes())
    done = shop.run("promote", "staging", "production", "--key", "db.pool.max",
                    "--pr-body", str(body))
    assert done.returncode == 0, done.stderr
    text = body.read_text()
    assert f"[`report.html`]({REPORT_ARTIFACT})" in text and "next to `diff.md`" in text
    # The link names the file the CI step writes.
    ci = yaml.safe_load(ci_file.read_text())
    (step,) = [s for s in ci["steps"] if s["name"] == "report"]
    assert any(f"--html {REPORT_ARTIFACT} " in c for c in step["commands"])


def test_a_page_after_a_page_takes_key_lines_from_the_cache(
        shop: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from magcfg.syntax import keylines

    first = build_report(load_project(shop.root / "magcfg.yaml"))
    indexed = calls(monkeypatch, keylines, "_index_simple")
    assert build_report(load_project(shop.root / "magcfg.yaml")) == first
    assert indexed == []
    edited = shop.root / "layers/environments/staging/db.yaml"
    edited.write_text("# a comment moves every line down\n" + edited.read_text())
    third = build_report(load_project(shop.root / "magcfg.yaml"))
    # Only the edited file is read for its lines (by the page, and by the build's own
    # warning locations).
    assert set(indexed) == {edited.read_text()} and third != first
