"""``magcfg docs``: the reference lists what each key allows, and --out creates its folder."""

from __future__ import annotations

import json

from ..conftest import Project, failed_cleanly, tree_state


def test_reference_rows_show_enums_ranges_patterns_defaults_reload_secrecy(mini: Project
                                                                           ) -> None:
    schema = json.loads((mini.root / "schemas/schema.json").read_text())
    schema["properties"]["magds"]["properties"]["port"]["default"] = 5432
    schema["properties"]["magds"]["properties"]["host"]["format"] = "hostname"
    mini.write("schemas/schema.json", json.dumps(schema))
    done = mini.run("docs", "--out", "docs/reference/config.md")
    assert done.returncode == 0, done.stderr
    rows = {line.split(" | ")[0].strip("| `"): line for line in
            (mini.root / "docs/reference/config.md").read_text().splitlines()
            if line.startswith("| `")}
    assert rows["logging.level"] == (
        '| `logging.level` | string | one of `"debug"`, `"info"`, `"warn"`, `"error"` | hot '
        "|  |  | level |")
    assert rows["magds.port"] == ("| `magds.port` | integer | >= `1`; <= `65535` | restart "
                                  "|  | `5432` | port |")
    assert rows["magds.password"] == ("| `magds.password` | string | pattern `^(vault\\|env)://` "
                                      "| restart | yes |  | secret |")
    assert rows["magds.host"] == ("| `magds.host` | string | format `hostname` | restart |  "
                                  "|  | host |")
    check = mini.run("docs", "--check", "--out", "docs/reference/config.md")
    assert check.returncode == 0, check.stderr


def test_docs_out_that_is_a_directory_is_refused_cleanly(mini: Project) -> None:
    (mini.root / "docs").mkdir()
    before = tree_state(mini.root)
    done = mini.run("docs", "--out", "docs")
    assert failed_cleanly(done, 1) == "docs: error: is a directory; give a file name\n"
    assert tree_state(mini.root) == before
