"""``ParsedFile.line``: the line of a key path as ``keylines.line_of`` gives it, with the
file's lines read once for all the key paths asked about. ``FileSource.read``: the
bytes of an input only when they are what the commit holds."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from magcfg.pipeline.load import ParsedFile
from magcfg.syntax import keylines
from magcfg.syntax.keylines import line_of
from magcfg.syntax.strict_yaml import parse_layer

from ..conftest import MINI_BASE, MINI_PROJECT, MINI_SCHEMA, Project, calls, failed_cleanly
from ..syntax.test_keylines import LOADABLE, _asked


@pytest.mark.parametrize("text", [*LOADABLE, "", "# only a comment\n"])
def test_line_answers_as_line_of_reading_the_file_once(
        text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = text.encode()
    data, markers = parse_layer("x.yaml", raw)
    # Other bytes (the file edited in memory, as a promotion does) are read again.
    edited = b"# edited\n" + raw
    expected = {(content, keypath): line_of("x.yaml", content, keypath)
                for content in (raw, edited) for keypath in _asked(data)}
    read = calls(monkeypatch, keylines, "simple_lines", arg=1)
    parsed = ParsedFile("x.yaml", "digest", tuple(data), markers, data)
    for keypath in _asked(data):
        assert parsed.line(raw, keypath) == expected[raw, keypath], keypath
    assert read == [raw]
    for keypath in _asked(data):
        assert parsed.line(edited, keypath) == expected[edited, keypath], keypath
    assert read == [raw, edited]


_compared = [0]


class _Compared(bytes):
    """Bytes that count how often they are compared by content (``_compared``)."""

    def __eq__(self, other: object) -> bool:
        _compared[0] += 1
        return bytes(self) == other

    def __ne__(self, other: object) -> bool:
        _compared[0] += 1
        return bytes(self) != other

    __hash__ = bytes.__hash__


def test_the_same_bytes_read_again_are_compared_by_content_once() -> None:
    # Each finding's line compared a whole file anew (a megabyte for each of 80,000
    # redundant overrides) when the file was read again after the first index.
    raw = b"m:\n" + b"".join(b"  k%d: 1\n" % i for i in range(100))
    data, markers = parse_layer("x.yaml", raw)
    parsed = ParsedFile("x.yaml", "digest", tuple(data), markers, data)
    parsed.line(_Compared(raw), ("m",))
    again = bytes(raw)
    _compared[0] = 0
    assert [parsed.line(again, ("m", f"k{i}")) for i in range(100)] == list(range(2, 102))
    assert _compared[0] <= 1


def test_line_of_a_prefixed_file_and_of_bytes_that_are_not_text() -> None:
    raw = b"host: db\npool:\n  max: 5\n"
    data, _ = parse_layer("x.yaml", raw)
    parsed = ParsedFile("x.yaml", "digest", tuple(data), False, data).under(("magds",))
    assert parsed.line(raw, ("magds", "pool", "max")) == 3
    assert parsed.line(raw, ("magds",)) == line_of("x.yaml", raw, ()) == 1
    assert parsed.line(b"\xff\xfe", ("magds", "host")) is None


LINK_HELD = "is a symlink in git (mode 120000) but a regular file in this checkout, holding " \
    "the link's target as text: the checkout lacks symlink support (core.symlinks=false, " \
    "as on Windows), so it would build other bytes than a clone with links; run `git " \
    "config core.symlinks true` and check the file out again (on Windows, with Developer " \
    "Mode on)"


def _committed(top: Path) -> functools.partial[subprocess.CompletedProcess[bytes]]:
    """Commit everything under ``top`` into a new repository; what runs git on."""
    run = functools.partial(subprocess.run, check=True, capture_output=True)
    run(["git", "init", "-q"], cwd=top)
    run(["git", "add", "-A"], cwd=top)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "i"],
        cwd=top)
    return run


def _committed_with_links(tmp_path: Path) -> Path:
    """A repository whose schema, a layer file and a second project file are committed
    symlinks."""
    top = tmp_path / "origin"
    project = Project(top)
    project.write("magcfg.yaml", MINI_PROJECT)
    project.write("shared/schema.json", json.dumps(MINI_SCHEMA, indent=2))
    for rel, text in MINI_BASE.items():
        project.write(rel, text)
    (top / "layers/base/magds.yaml").unlink()
    project.write("shared/magds.yaml", MINI_BASE["layers/base/magds.yaml"])
    (top / "layers/base/magds.yaml").symlink_to("../../shared/magds.yaml")
    (top / "linked.yaml").symlink_to("magcfg.yaml")
    (top / "layers/environments/prod").rename(top / "shared/prod")
    (top / "layers/environments/prod").symlink_to("../../shared/prod")
    (top / "schemas").mkdir()
    (top / "schemas/schema.json").symlink_to("../shared/schema.json")
    _committed(top)
    return top


def test_symlinks_checked_out_as_files_are_refused(tmp_path: Path) -> None:
    """With ``core.symlinks=false`` (Windows) git writes a committed symlink as a file
    holding its target: the build parsed `../../shared/magds.yaml` as the layer's YAML
    (a string where a mapping belongs), and the schema as broken JSON, never saying why."""
    origin = _committed_with_links(tmp_path)
    clone = tmp_path / "clone"
    subprocess.run(["git", "-c", "core.symlinks=false", "clone", "-q", str(origin),
                    str(clone)], check=True, capture_output=True)
    assert (clone / "layers/base/magds.yaml").read_text() == "../../shared/magds.yaml"
    project = Project(clone)
    stderr = failed_cleanly(project.run("build"))
    assert stderr == (f"layers/base/magds.yaml: error: {LINK_HELD}\n"
                      f"layers/environments/prod: error: {LINK_HELD}\n")
    assert project.snapshot_tree() == {}
    # The layer directory, once the layer file is a file again.
    project.write("layers/base/magds.yaml", MINI_BASE["layers/base/magds.yaml"])
    stderr = failed_cleanly(project.run("build"))
    assert f"layers/environments/prod: error: {LINK_HELD}\n" in stderr
    (clone / "layers/environments/prod").unlink()
    # The schema, once the layer directory is gone.
    assert f"schemas/schema.json: error: {LINK_HELD}\n" in failed_cleanly(project.run("build"))
    # The project file.
    assert failed_cleanly(project.run("build", "--project", "linked.yaml")).startswith(
        f"linked.yaml: error: {LINK_HELD}\n")
    assert project.snapshot_tree() == {}
    # Checked out with links, the same commit builds.
    subprocess.run(["git", "config", "core.symlinks", "true"], cwd=clone, check=True)
    subprocess.run(["git", "checkout", "--", "."], cwd=clone, check=True)
    for rel in ("schemas/schema.json", "layers/base/magds.yaml", "layers/environments/prod"):
        assert (clone / rel).is_symlink()
    done = project.run("build")
    assert done.returncode == 0, done.stderr


def test_symlinks_whose_target_holds_a_line_end_checked_out_as_files_are_refused(
        tmp_path: Path) -> None:
    """A target is any bytes but NUL: one holding a line end (or YAML, or JSON) was built
    as the layer, schema or project file it spells where a checkout lacks symlinks, as
    only a file of one line was taken for a possible link. git's index knows the mode."""
    top = tmp_path / "origin"
    origin = Project(top)
    origin.write("magcfg.yaml", MINI_PROJECT)
    for rel, text in MINI_BASE.items():
        origin.write(rel, text)
    (top / "schemas").mkdir()
    (top / "schemas/schema.json").symlink_to(json.dumps(MINI_SCHEMA, indent=1) + "\n")
    (top / "layers/base/magds.yaml").unlink()
    (top / "layers/base/magds.yaml").symlink_to("magds:\n  host: planted\n")
    (top / "linked.yaml").symlink_to(MINI_PROJECT)
    run = _committed(top)
    clone = Project(tmp_path / "clone")
    run(["git", "-c", "core.symlinks=false", "clone", "-q", str(top), str(clone.root)])
    assert (clone.root / "layers/base/magds.yaml").read_text() == "magds:\n  host: planted\n"
    stderr = failed_cleanly(clone.run("build"))
    assert stderr == (f"layers/base/magds.yaml: error: {LINK_HELD}\n"
                      f"schemas/schema.json: error: {LINK_HELD}\n")
    # The project file is refused as it is read, before any file it names.
    assert failed_cleanly(clone.run("build", "--project", "linked.yaml")) \
        == f"linked.yaml: error: {LINK_HELD}\n"
    assert clone.snapshot_tree() == {}
    # A regular file of other bytes where the link was: an edit, which builds.
    clone.write("layers/base/magds.yaml", "magds:\n  host: edited\n")
    clone.write("schemas/schema.json", json.dumps(MINI_SCHEMA))
    done = clone.run("build")
    assert done.returncode == 0, done.stderr


def test_a_symlink_whose_target_is_longer_than_a_path_checked_out_as_a_file_is_refused(
        tmp_path: Path) -> None:
    """git holds a link's target as a blob of any size, and a checkout without symlinks
    writes it whole, however long: a target of more than the 4,095 bytes a link on disk
    holds was built as the layer it spells, read as no link for its length."""
    top = tmp_path / "origin"
    origin = Project(top)
    origin.write("magcfg.yaml", MINI_PROJECT)
    for rel, text in MINI_BASE.items():
        origin.write(rel, text)
    origin.write("schemas/schema.json", json.dumps(MINI_SCHEMA))
    run = functools.partial(subprocess.run, check=True, capture_output=True)
    run(["git", "init", "-q"], cwd=top)
    run(["git", "add", "-A"], cwd=top)
    target = "magds:\n  host: planted\n" + "# padding\n" * 500
    assert len(target) > 4095
    blob = run(["git", "hash-object", "-w", "--stdin"], cwd=top, input=target.encode()
               ).stdout.decode().strip()
    run(["git", "update-index", "--cacheinfo", f"120000,{blob},layers/base/magds.yaml"],
        cwd=top)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "i"],
        cwd=top)
    clone = Project(tmp_path / "clone")
    run(["git", "-c", "core.symlinks=false", "clone", "-q", str(top), str(clone.root)])
    assert (clone.root / "layers/base/magds.yaml").read_text() == target
    stderr = failed_cleanly(clone.run("build"))
    assert stderr == f"layers/base/magds.yaml: error: {LINK_HELD}\n"
    assert clone.snapshot_tree() == {}


def _cloned_without_links(tmp_path: Path, links: dict[str, str]) -> Project:
    """The small project with ``links`` (path -> target) committed as symlinks in place
    of what it holds there, cloned with ``core.symlinks=false``: each a file of its
    target."""
    top = tmp_path / "origin"
    origin = Project(top)
    files = {"magcfg.yaml": MINI_PROJECT, "schemas/schema.json": json.dumps(MINI_SCHEMA),
             **MINI_BASE}
    for rel, text in files.items():
        if not any(rel == link or rel.startswith(f"{link}/") for link in links):
            origin.write(rel, text)
    for rel, target in links.items():
        (top / rel).parent.mkdir(parents=True, exist_ok=True)
        (top / rel).symlink_to(target)
    run = _committed(top)
    clone = Project(tmp_path / "clone")
    run(["git", "-c", "core.symlinks=false", "clone", "-q", str(top), str(clone.root)])
    return clone


COMMANDS = {"build": ["build"], "diff": ["diff", "dev", "prod"],
            "explain": ["explain", "magds.host", "--env", "prod"],
            "promote": ["promote", "dev", "prod"], "verify": ["verify"],
            "check-env": ["check-env", "--env", "dev"], "lint": ["lint"]}
"""A run of each command that loads the project."""


@pytest.mark.parametrize("command", COMMANDS)
def test_a_project_file_held_for_a_symlink_of_several_lines_is_refused_by_every_command(
        tmp_path: Path, command: str) -> None:
    """A project file committed as a link whose target is a project (any text may be a
    target) is that project's text where a checkout lacks symlinks: the build alone
    refused it, when it asked git about the files it read; every other command ran
    the project it spells."""
    clone = _cloned_without_links(tmp_path, {"magcfg.yaml": MINI_PROJECT})
    assert (clone.root / "magcfg.yaml").read_text() == MINI_PROJECT
    before = clone.snapshot_tree("")
    stderr = failed_cleanly(clone.run(*COMMANDS[command]))
    assert stderr.startswith(f"magcfg.yaml: error: {LINK_HELD}\n"), stderr
    assert clone.snapshot_tree("") == before


@pytest.mark.parametrize("command", ["build", "diff", "explain", "promote"])
def test_a_layer_directory_held_for_a_symlink_of_several_lines_is_refused_naming_it(
        tmp_path: Path, command: str) -> None:
    """A layer directory committed as a link whose target holds a line end was "is not
    a directory", where a target of one line was named a link held as a file."""
    clone = _cloned_without_links(tmp_path, {"layers/environments/prod": "../prod\nlayers"})
    stderr = failed_cleanly(clone.run(*COMMANDS[command]))
    assert stderr.startswith(f"layers/environments/prod: error: {LINK_HELD}\n"), stderr
    # A file of other text there is no link's: what it is.
    (clone.root / "layers/environments/prod").write_text("../prod\n")
    stderr = failed_cleanly(clone.run(*COMMANDS[command]))
    assert stderr.startswith("layers/environments/prod: error: is not a directory\n"), stderr


@pytest.mark.parametrize("command", ["diff", "explain", "promote", "report"])
@pytest.mark.parametrize(("rel", "target"), [
    ("layers/environments/prod/logging.yaml", "logging:\n  level: debug\n"),
    ("schemas/schema.json", json.dumps(MINI_SCHEMA, indent=1))])
def test_an_input_held_for_a_symlink_of_several_lines_is_refused_by_every_command(
        tmp_path: Path, command: str, rel: str, target: str) -> None:
    """A layer file or schema committed as a link whose target is YAML or JSON of several
    lines: the build refused it (asking git's index about every file it read), while
    `diff`, `explain`, `promote` and `report` read the target as the file."""
    clone = _cloned_without_links(tmp_path, {rel: target})
    args = ["report", "--html", "matrix.html"] if command == "report" else COMMANDS[command]
    before = clone.snapshot_tree("")
    stderr = failed_cleanly(clone.run(*args))
    assert stderr == f"{rel}: error: {LINK_HELD}\n", stderr
    assert clone.snapshot_tree("") == before


def test_a_file_without_a_line_end_asks_git_nothing_unless_it_may_be_a_link(
        mini: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """git's index is listed only for a file that could be a link's target (one line,
    no line end), once for all of them."""
    import magcfg
    from magcfg.compiler import Compiler

    subprocess.run(["git", "init", "-q"], cwd=mini.root, check=True)
    spawned = calls(monkeypatch, subprocess, "run")
    magcfg.build(magcfg.load_project(mini.root / "magcfg.yaml"))
    assert not [a for a in spawned if a[:2] == ["git", "ls-files"]]
    mini.write("layers/base/magds.yaml", "magds: {host: db}")
    mini.write("layers/base/logging.yaml", "logging: {level: info}")
    compiler = Compiler(magcfg.load_project(mini.root / "magcfg.yaml"))
    compiler.load_stacks(["dev", "prod"])
    assert [a for a in spawned if a[:2] == ["git", "ls-files"]] == [
        ["git", "ls-files", "--stage", "-z"]]


LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:" + "ab" * 32 \
    + "\nsize 1234\n"
"""A whole Git LFS pointer, as a checkout without git-lfs writes the file it stands for."""
LFS_READ = [("layers/base/magds.yaml", "build"), ("schemas/schema.json", "build"),
            ("layers/environments/prod/logging.yaml", "build"),
            *((rel, command) for rel in ("layers/base/magds.yaml", "schemas/schema.json")
              for command in ("diff", "explain", "promote")),
            ("schemas/schema.json", "docs"), ("magcfg.yaml", "verify"),
            ("magcfg.yaml", "check-env"), ("magcfg.yaml", "lint")]
"""Each command that reads an input, with an input it reads: the project file for the
commands that read no layer."""


@pytest.mark.parametrize(("rel", "command"), LFS_READ)
def test_git_lfs_pointers_are_refused(mini: Project, rel: str, command: str) -> None:
    """Checked out without git-lfs (or with GIT_LFS_SKIP_SMUDGE; GitHub's checkout has
    `lfs: false`) an LFS file is its pointer: CI would build from other bytes than a
    checkout with git-lfs. Refused by each command that reads it, never built."""
    mini.write(rel, LFS_POINTER)
    before = mini.snapshot_tree("")
    stderr = failed_cleanly(mini.run(*COMMANDS.get(command, [command])))
    assert stderr.startswith(
        f"{rel}: error: is a Git LFS pointer, not the file it stands for: this checkout "
        "was made without git-lfs (or with GIT_LFS_SKIP_SMUDGE), so it would build other "
        "bytes than one with it; install git-lfs and run `git lfs pull`, or keep the inputs "
        "out of LFS (drop their filter=lfs in .gitattributes and commit them again)\n"), stderr
    assert mini.snapshot_tree("") == before


@pytest.mark.parametrize(("rel", "command"), LFS_READ)
def test_inputs_git_lfs_tracks_are_refused_whatever_the_checkout_holds(
        mini: Project, rel: str, command: str) -> None:
    """With git-lfs a checkout holds the file an LFS pointer stands for: the build read
    it, though the commit holds the pointer (`diff --against` refuses it there) and the
    bytes come from LFS storage, which no commit pins. The attribute is asked: every
    command refuses an input `.gitattributes` gives `filter=lfs`, whatever it holds."""
    run = _committed(mini.root)
    mini.write(".gitattributes", f"{rel} filter=lfs diff=lfs merge=lfs -text\n")
    run(["git", "add", ".gitattributes"], cwd=mini.root)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "lfs"],
        cwd=mini.root)
    before = mini.snapshot_tree("")
    stderr = failed_cleanly(mini.run(*COMMANDS.get(command, [command])))
    assert stderr.startswith(
        f"{rel}: error: is tracked by Git LFS (filter=lfs in .gitattributes): a commit "
        "holds its pointer, and the bytes a checkout with git-lfs reads come from LFS "
        "storage, which no commit pins (`diff --against` and a clone without git-lfs read "
        "the pointer); keep the inputs out of LFS (drop their filter=lfs in .gitattributes "
        "and commit them again)\n"), stderr
    assert mini.snapshot_tree("") == before


def test_git_lfs_pointers_at_a_commit_are_refused(mini: Project) -> None:
    """At a commit every LFS file is its pointer, whatever the checkout holds: `diff
    --against` and `report --against` parsed it as the layer or schema it is not (a
    string where a mapping belongs, JSON that does not parse)."""
    run = _committed(mini.root)
    for rel in ("layers/base/magds.yaml", "schemas/schema.json"):
        mini.write(rel, LFS_POINTER)
        run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qam",
             "lfs"], cwd=mini.root)
        run(["git", "checkout", "-q", "HEAD~1", "--", rel], cwd=mini.root)
        for args in (["diff", "prod", "--against", "HEAD"],
                     ["report", "--html", "out.html", "--against", "HEAD"]):
            stderr = failed_cleanly(mini.run(*args))
            assert stderr.startswith(
                f"{rel}@HEAD: error: is a Git LFS pointer at this commit: git holds the "
                "file's bytes in LFS storage, which magcfg does not read, and a pointer is "
                "no input; keep the inputs out of LFS (drop their filter=lfs in "
                ".gitattributes and commit them again)\n"), stderr
            assert not (mini.root / "out.html").exists()
        run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qam",
             "out of lfs"], cwd=mini.root)


def test_a_file_that_only_begins_like_an_lfs_pointer_is_read_as_itself(
        mini: Project) -> None:
    """Only a whole pointer is one (``project.lfs_pointer``, as lint reads a key store):
    a layer that begins with a pointer's first line and goes on is a layer, refused for
    what it holds, not named a pointer."""
    mini.write("layers/base/magds.yaml", "version https://git-lfs.github.com/spec/v1\n"
               "magds: {port: 1}\n")
    stderr = failed_cleanly(mini.run("build"))
    assert stderr.startswith("layers/base/magds.yaml:") and "LFS" not in stderr, stderr
    assert mini.snapshot_tree() == {}


def test_git_crypt_ciphertext_is_refused(mini: Project) -> None:
    """A locked git-crypt checkout holds the ciphertext: refused by name, where it was a
    control character at line 1."""
    mini.write("layers/base/magds.yaml", b"\0GITCRYPT\0" + bytes(range(256)))
    stderr = failed_cleanly(mini.run("build"))
    assert stderr.startswith(
        "layers/base/magds.yaml: error: is encrypted by git-crypt, and this checkout is "
        "locked, so it would build other bytes than an unlocked one; run `git-crypt "
        "unlock` first\n")


CONVERTED = "holds the commit's bytes with only their line ends, encoding or $Id$ changed " \
    "(git's checkout conversion, by a .gitattributes or core.autocrlf, or an editor's), so " \
    "it would build other bytes than the commit's; give its path `-text -ident " \
    "-working-tree-encoding` in the deepest .gitattributes that sets them and check it out " \
    "again, or commit the change"


@pytest.mark.parametrize(("attributes", "converted"), [
    ("layers/base/.gitattributes", "* text eol=crlf\n"),
    ("layers/base/.gitattributes", "* ident\n"),
    ("schemas/.gitattributes", "*.json text working-tree-encoding=UTF-16\n"),
])
def test_inputs_git_converts_on_checkout_are_refused(
        tmp_path: Path, attributes: str, converted: str) -> None:
    """A ``.gitattributes`` in a layer directory wins over init's ``/layers/** -text``
    above it: a pull request adding one made every clone (CI) hold CRLF line ends, UTF-16
    or an expanded ``$Id$`` where the committer's checkout held the commit's bytes, and
    build, and sign, other bytes. An edit beside it still builds."""
    top = tmp_path / "origin"
    project = Project(top)
    project.write("magcfg.yaml", MINI_PROJECT)
    project.write(".gitattributes", "/magcfg.yaml -text -ident\n/layers/** -text -ident\n"
                  "/schemas/** -text -ident\n")
    project.write("schemas/schema.json", json.dumps(MINI_SCHEMA, indent=2))
    for rel, text in MINI_BASE.items():
        project.write(rel, text)
    project.write("layers/base/logging.yaml", "# $Id$\n" + MINI_BASE["layers/base/logging.yaml"])
    project.write(attributes, converted)
    if "UTF-16" in converted:  # git converts to UTF-8 when it is added
        text = (top / "schemas/schema.json").read_text()
        (top / "schemas/schema.json").write_bytes(text.encode("utf-16"))
    run = _committed(top)
    clone = Project(tmp_path / "clone")
    run(["git", "clone", "-q", str(top), str(clone.root)])
    rel = "schemas/schema.json" if "UTF-16" in converted else "layers/base/logging.yaml"
    assert (clone.root / rel).read_bytes() != run(
        ["git", "cat-file", "blob", f"HEAD:{rel}"], cwd=clone.root).stdout
    stderr = failed_cleanly(clone.run("build"))
    assert f"{rel}: error: {CONVERTED}\n" in stderr
    assert clone.snapshot_tree() == {}
    # Changed beyond the conversion: an edit, not refused.
    raw = (clone.root / rel).read_bytes()
    edited = raw.decode("utf-16").replace("level", "Level").encode("utf-16") \
        if "UTF-16" in converted else raw.replace(b"info", b"warn")
    clone.write(rel, edited)
    assert f"{rel}: error: {CONVERTED}" not in clone.run("build").stderr


def test_a_converted_schema_is_refused_where_the_cache_knows_its_bytes(mini: Project) -> None:
    """A rebuild hashes the schema and reads it only when the cache lacks what it gives:
    a schema the checkout holds converted (CRLF here, the commit LF) was refused by a
    cold build, CI's, and built by a warm one, the committer's. Bytes no checkout could
    have changed are remembered as such, and not read again."""
    run = functools.partial(subprocess.run, cwd=mini.root, check=True, capture_output=True)
    schema = mini.root / "schemas/schema.json"
    schema.write_bytes(schema.read_bytes().replace(b"\n", b"\r\n"))
    run(["git", "init", "-q"])
    done = mini.run("build")  # not yet in the index: an edit, and the cache is warm
    assert done.returncode == 0, done.stderr
    mini.write(".gitattributes", "*.json text eol=crlf\n")
    run(["git", "add", "-A"])
    assert run(["git", "cat-file", "blob", ":schemas/schema.json"]).stdout == \
        schema.read_bytes().replace(b"\r\n", b"\n")
    stderr = failed_cleanly(mini.run("build"))
    assert stderr == f"schemas/schema.json: error: {CONVERTED}\n"
    shutil.rmtree(mini.root / ".magcfg-cache")
    assert failed_cleanly(mini.run("build")) == stderr


def test_a_schema_no_checkout_could_change_is_read_once(
        mini: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    import magcfg
    from magcfg.project import Checkout

    examined = calls(monkeypatch, Checkout, "examine", arg=1)
    project = magcfg.load_project(mini.root / "magcfg.yaml")
    magcfg.build(project)
    assert "schemas/schema.json" in examined
    examined.clear()
    mini.write("layers/base/logging.yaml", "logging:\n  level: warn\n")
    magcfg.build(project)
    assert "layers/base/logging.yaml" in examined
    assert "schemas/schema.json" not in examined


def test_a_file_git_could_have_changed_is_refused_where_git_refuses_the_repository(
        mini: Project) -> None:
    """git refuses a repository another user owns (a CI container's checkout): the
    index could not be read, and a converted or linked input built as if committed."""
    run = functools.partial(subprocess.run, cwd=mini.root, check=True, capture_output=True)
    run(["git", "init", "-q"])
    run(["git", "add", "-A"])
    run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "i"])
    other = {"GIT_TEST_ASSUME_DIFFERENT_OWNER": "1"}  # git's own stand-in for another owner
    done = mini.run("build", env=other)
    assert done.returncode == 0, done.stderr  # nothing a checkout could have changed
    mini.write("layers/base/logging.yaml", "logging:\r\n  level: info\r\n")
    stderr = failed_cleanly(mini.run("build", env=other))
    assert stderr == (
        "layers/base/logging.yaml: error: could hold what a checkout changed (a symlink's "
        "target, or the commit's bytes with other line ends, encoding or $Id$), and git, "
        "which would tell, refuses this repository: it belongs to another user; run `git "
        f"config --global --add safe.directory {mini.root}` where magcfg runs\n")


def test_a_layer_directory_named_in_another_case_is_refused(mini: Project) -> None:
    """``layers/environments/Prod`` where the project reads ``.../prod``: an empty layer
    on Linux, and Prod's files on macOS and Windows, which open it for that name: the
    two built, and signed, other bytes."""
    (mini.root / "layers/environments/prod").rename(mini.root / "layers/environments/Prod")
    stderr = failed_cleanly(mini.run("build"))
    assert stderr == (
        "layers/environments/prod: error: is not here, but layers/environments/Prod is, "
        "which macOS or Windows would read for it (names there differ only in case, "
        "normalization, a trailing dot or space); write the name as it is\n")
    assert mini.snapshot_tree() == {}
    (mini.root / "layers/environments/Prod").rename(mini.root / "layers/environments/other")
    assert mini.run("build").returncode == 0  # nothing there: an empty layer


def test_a_layer_directory_beside_one_named_in_another_case_is_refused(mini: Project) -> None:
    """``layers/environments/Prod`` beside the ``prod`` the project reads (a pull request
    adding ``Prod/magds.yaml``, or a ``prod/.gitkeep`` init left): Linux built prod's
    files alone, and a checkout on macOS or Windows, one directory for both, Prod's
    too: the two built, and signed, other bytes."""
    mini.write("layers/environments/Prod/magds.yaml", "magds:\n  host: planted\n")
    stderr = failed_cleanly(mini.run("build"))
    assert stderr == (
        "layers/environments/prod: error: differs from layers/environments/Prod only in "
        "case: on macOS and Windows they are one file; rename or merge them\n")
    assert mini.snapshot_tree() == {}
    (mini.root / "layers/environments/prod/logging.yaml").unlink()
    mini.write("layers/environments/prod/.gitkeep", "")
    assert failed_cleanly(mini.run("build")) == stderr
    (mini.root / "layers/Environments").mkdir()
    assert "layers/environments: error: differs from layers/Environments only in case" \
        in failed_cleanly(mini.run("build"))


@pytest.mark.parametrize(("written", "named"), [
    ("layers/base/MAGDS.YAML", "layers/base/magds.yaml: error: differs from "
     "layers/base/MAGDS.YAML only in case"),
    ("layers/base/Pool/max.yaml", "layers/base/pool: error: differs from layers/base/Pool "
     "only in case"),
])
def test_an_entry_of_a_layer_directory_one_with_a_layer_file_elsewhere_is_refused(
        mini: Project, written: str, named: str) -> None:
    """``MAGDS.YAML`` beside ``magds.yaml`` is no layer file on Linux and the same file
    on macOS and Windows (whichever git wrote last); ``Pool/`` beside ``pool/`` is one
    directory there: a checkout there built other files, or the same under other
    names, and signed other bytes."""
    mini.write("layers/base/pool/tags.yaml", "magds:\n  tags: [a]\n")
    mini.write(written, "logging:\n  format: json\n")
    stderr = failed_cleanly(mini.run("build"))
    assert named in stderr
    assert mini.snapshot_tree() == {}
    mini.write("layers/base/README.md", "")
    mini.write("layers/base/readme.md", "")  # no layer file: not the build's
    shutil.rmtree(mini.root / "layers/base/Pool", ignore_errors=True)
    (mini.root / "layers/base/MAGDS.YAML").unlink(missing_ok=True)
    done = mini.run("build")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("written", "named"), [
    ("schemas/Schema.json", "schemas/schema.json: error: differs from schemas/Schema.json "
     "only in case"),
    ("Magcfg.yaml", "magcfg.yaml: error: differs from Magcfg.yaml only in case"),
])
def test_a_file_the_build_reads_beside_one_named_in_another_case_is_refused(
        mini: Project, written: str, named: str) -> None:
    """``schemas/Schema.json`` beside the ``schema.json`` the project names: Linux read
    the one, and a checkout on macOS or Windows the file git wrote last, one file
    there, each building, and signing, its own."""
    mini.write(written, (mini.root / written.lower()).read_text().replace("5433", "1"))
    stderr = failed_cleanly(mini.run("build"))
    assert f"{named}: on macOS and Windows they are one file; rename or merge them\n" \
        in stderr
    assert mini.snapshot_tree() == {}


@pytest.mark.parametrize("command", ["diff", "explain", "lint"])
def test_a_project_file_held_for_a_symlink_longer_than_a_link_on_disk_is_refused(
        tmp_path: Path, command: str) -> None:
    """git writes a link's target whole where it makes no link, however long: a project
    of more than the 4,095 bytes a link on disk holds was read as the project by every
    command but the build, asked about git's index for short texts alone."""
    top = tmp_path / "origin"
    origin = Project(top)
    for rel, text in MINI_BASE.items():
        origin.write(rel, text)
    origin.write("schemas/schema.json", json.dumps(MINI_SCHEMA))
    run = _committed(top)
    target = MINI_PROJECT + "# padding\n" * 500
    assert len(target) > 4095
    blob = run(["git", "hash-object", "-w", "--stdin"], cwd=top, input=target.encode()
               ).stdout.decode().strip()
    run(["git", "update-index", "--add", "--cacheinfo", f"120000,{blob},magcfg.yaml"],
        cwd=top)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm",
         "link"], cwd=top)
    clone = Project(tmp_path / "clone")
    run(["git", "-c", "core.symlinks=false", "clone", "-q", str(top), str(clone.root)])
    assert (clone.root / "magcfg.yaml").read_text() == target
    before = clone.snapshot_tree("")
    stderr = failed_cleanly(clone.run(*COMMANDS[command]))
    assert stderr.startswith(f"magcfg.yaml: error: {LINK_HELD}\n"), stderr
    assert clone.snapshot_tree("") == before
