"""``GitSource``: the layer files of a commit, listed and read with the working tree's
containment (``durable.Tree``): the same files, and what the working tree refuses refused
with the same message."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from magcfg.durable import PathError, path_problem
from magcfg.errors import Diagnostic
from magcfg.pipeline.gitsource import GitSource
from magcfg.pipeline.load import FileSource
from magcfg.project import Project as Loaded
from magcfg.project import load_project

from ..conftest import Project
from ..review.promotion_repo import git, graft, make_repo, tree_bomb

# Symlinks planted in layers/base, each something a pull request can commit.
LINKS = {
    "loop": ".",
    "self.yaml": "self.yaml",
    "dangling.yaml": "nowhere.yaml",
    "dangling": "nowhere",
    "git.yaml": "../../.git/config",
    "gitdir": "../../.git",
    "generated": "../../generated/dev",
    "config.yaml": "../../generated/dev/config.json",
    "absolute": "/etc",
    "above.yaml": "../../../outside.yaml",
    "dev": "../environments/dev",
    "shared.yaml": "../environments/staging/db.yaml",
}


@pytest.fixture
def repo(tmp_path: Path) -> Project:
    return make_repo(tmp_path / "shop")


def _committed(root: Path) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-qm", "a pull request")


def _outcome(read: Callable[[str], bytes], path: str) -> bytes | list[Diagnostic]:
    try:
        return read(path)
    except PathError as exc:
        return exc.diagnostics


@contextlib.contextmanager
def _sides(project: Loaded, ref: str = "HEAD") -> Iterator[tuple[FileSource, GitSource]]:
    with GitSource(project.root, ref) as there:
        there.fence(project.fenced)
        yield FileSource(project.root, project.fenced), there


def _compare(here: FileSource, there: GitSource, project: Loaded,
             names: Iterable[str] = ()) -> None:
    """Every layer directory of ``project`` lists the same files and problems on both
    sides, its files read the same, and each of ``names`` (read by name, as the schema
    and the project file are) gives the same bytes or the same located error."""
    for directory in sorted({spec.directory(env) for spec in project.layers
                             for env in project.environments}):
        files, problems = here.list_layer(directory)
        found = there.list_layer(directory)
        assert (found[0], sorted(found[1])) == (files, sorted(problems)), directory
        for path in files:
            assert there.read(path) == here.read(path), path
    for path in names:
        assert _outcome(there.read, path) == _outcome(here.read, path), path


def test_a_ref_lists_and_refuses_what_the_working_tree_does(repo: Project) -> None:
    base = repo.root / "layers/base"
    (repo.root.parent / "outside.yaml").write_text("db:\n  port: 4242\n")
    for name, target in LINKS.items():
        os.symlink(target, base / name)
    _committed(repo.root)
    project = load_project(repo.root / "magcfg.yaml")
    with _sides(project) as (here, there):
        _compare(here, there, project, [f"layers/base/{name}" for name in LINKS])
        files, problems = there.list_layer("layers/base")
    assert "layers/base/dev/db.yaml" in files and "layers/base/shared.yaml" in files
    assert sorted(d.format() for d in problems) == [
        "layers/base/above.yaml: error: symlink leads outside the repository",
        "layers/base/absolute: error: symlink leads outside the repository",
        "layers/base/config.yaml: error: symlink leads into generated, which magcfg does not "
        "read (.git, the output and the cache are off limits)",
        "layers/base/dangling.yaml: error: dangling symlink: its target does not exist",
        "layers/base/generated: error: symlink leads into generated, which magcfg does not "
        "read (.git, the output and the cache are off limits)",
        "layers/base/git.yaml: error: symlink leads into .git, which magcfg does not read "
        "(.git, the output and the cache are off limits)",
        "layers/base/gitdir: error: symlink leads into .git, which magcfg does not read "
        "(.git, the output and the cache are off limits)",
        "layers/base/loop: error: symlink loop: it leads to a directory that contains it",
        "layers/base/self.yaml: error: symlink loop (too many levels of symbolic links)",
    ]


def test_a_ref_keeps_a_project_in_a_subdirectory_to_itself(tmp_path: Path) -> None:
    """In a repository holding more than the project, a symlink may lead out of the
    project but stay in the repository: at a ref as in the working tree, it leads outside."""
    outer = tmp_path / "mono"
    project = make_repo(outer / "config")
    (project.root / ".git").rename(outer / ".git")
    (outer / "other").mkdir()
    (outer / "other/k.yaml").write_text("db:\n  port: 4242\n")
    os.symlink("../../../../other/k.yaml", project.root / "layers/environments/dev/zz.yaml")
    os.symlink("../../../../other", project.root / "layers/environments/dev/other")
    git(outer, "add", "-A")
    git(outer, "commit", "-qm", "a link out of the project")
    loaded = load_project(project.root / "magcfg.yaml")
    with _sides(loaded) as (here, there):
        _compare(here, there, loaded, ["layers/environments/dev/zz.yaml"])
        problems = there.list_layer("layers/environments/dev")[1]
    assert sorted(d.format() for d in problems) == [
        "layers/environments/dev/other: error: symlink leads outside the project (config/)",
        "layers/environments/dev/zz.yaml: error: symlink leads outside the project (config/)"]


def test_a_ref_refuses_what_git_itself_would(repo: Project) -> None:
    """A submodule and an entry named ``..`` are located errors, not GitPython's
    exceptions; the rest of the directory is still listed."""
    head = git(repo.root, "rev-parse", "HEAD").strip()
    git(repo.root, "reset", "-q", "--hard",
        graft(repo.root, "layers/base/sub", f"160000 commit {head}"))
    blob = git(repo.root, "rev-parse", "HEAD:layers/base/app.yaml").strip()
    dotdot = git(repo.root, "mktree", given=f"100644 blob {blob}\tapp.yaml\n").strip()
    # Not checked out: git itself refuses to write such a tree.
    ref = graft(repo.root, "layers/environments/dev/..", f"040000 tree {dotdot}")
    project = load_project(repo.root / "magcfg.yaml")
    with _sides(project, ref) as (_, there):
        files, problems = there.list_layer("layers/base")
        assert files == ["layers/base/app.yaml", "layers/base/db.yaml",
                         "layers/base/logging.yaml"]
        assert [d.format() for d in problems] == [
            "layers/base/sub: error: is a git submodule; magcfg reads no layer files from "
            "other repositories"]
        with pytest.raises(PathError) as raised:
            there.read("layers/base/sub")
        assert raised.value.diagnostics == problems
        files, problems = there.list_layer("layers/environments/dev")
    assert files == []
    assert [d.format() for d in problems] == [
        "layers/environments/dev: error: git tree holds an entry git refuses (a name such as "
        "'..' or '.git', or a bad mode); magcfg does not read it"]


def test_a_symlink_longer_than_any_on_disk_is_refused_unread(repo: Project) -> None:
    target = git(repo.root, "hash-object", "-w", "--stdin", given="x/" * 3000).strip()
    ref = graft(repo.root, "layers/base/long.yaml", f"120000 blob {target}")
    project = load_project(repo.root / "magcfg.yaml")
    with _sides(project, ref) as (_, there):
        problems = there.list_layer("layers/base")[1]
    assert [d.format() for d in problems] == ["layers/base/long.yaml: error: file name too long"]


def test_a_file_larger_than_magcfg_reads_is_refused_unread_on_both_sides(
        repo: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit may hold a blob of any size (git compresses a gigabyte of spaces to a
    megabyte): refused by its size, as the working tree refuses a file, and git's next
    answer is still right. The real bound is 256 MiB (tests/test_durable.py)."""
    from magcfg import durable
    from magcfg.pipeline import gitsource

    for module in (durable, gitsource):
        monkeypatch.setattr(module, "MAX_INPUT_BYTES", 1000)
    (repo.root / "layers/base/big.yaml").write_text("big: " + "x" * 1000 + "\n")
    _committed(repo.root)
    project = load_project(repo.root / "magcfg.yaml")
    with _sides(project) as (here, there):
        refused = [path_problem("layers/base/big.yaml", "is larger than 1000 bytes")]
        assert _outcome(there.read, "layers/base/big.yaml") == refused
        assert _outcome(here.read, "layers/base/big.yaml") == refused
        # Git's next answers are right.
        assert _outcome(there.read, "magcfg.yaml") == here.read("magcfg.yaml")
        assert _outcome(there.read, "layers/base/db.yaml") == here.read(
            "layers/base/db.yaml")


def test_a_tree_object_larger_than_a_walk_lists_is_refused_unread(
        repo: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from magcfg.pipeline import gitsource

    monkeypatch.setattr(gitsource, "_MAX_TREE", 200)
    for n in range(10):
        (repo.root / f"layers/base/wide/file-{n:02}.yaml").parent.mkdir(exist_ok=True)
        (repo.root / f"layers/base/wide/file-{n:02}.yaml").write_text(f"k{n}: 1\n")
    _committed(repo.root)
    project = load_project(repo.root / "magcfg.yaml")
    with _sides(project) as (_, there):
        problems = there.list_layer("layers/base")[1]
        assert [d.format() for d in problems] == [f"layers/base: error: {gitsource.TOO_MANY}"]
        assert there.read("layers/base/db.yaml")  # git still answers


def test_symlink_resolution_is_bounded(repo: Project, monkeypatch: pytest.MonkeyPatch
                                       ) -> None:
    """Every link may be followed, but not without end: a walk meeting many links of
    long targets stops at ``MAX_STEPS`` with a located error."""
    from magcfg.pipeline import gitsource

    monkeypatch.setattr(gitsource, "MAX_STEPS", 20)
    os.symlink("/".join(["../base"] * 10) + "/app.yaml", repo.root / "layers/base/long.yaml")
    _committed(repo.root)
    project = load_project(repo.root / "magcfg.yaml")
    with _sides(project) as (_, there):
        assert there.list_layer("layers/base") == ([], [path_problem(
            "layers/base", "the symlinks at this commit take more than 20 steps to resolve; "
            "magcfg stops here")])


def test_a_tree_naming_a_million_paths_is_refused_at_the_bound(repo: Project) -> None:
    """Git stores a tree once however often it is named: six small objects name a
    million layer files. The listing stops at ``MAX_ENTRIES`` with a located error."""
    from magcfg.pipeline import gitsource

    ref = tree_bomb(repo.root, "layers/base/zbomb")
    project = load_project(repo.root / "magcfg.yaml")
    with _sides(project, ref) as (_, there):
        files, problems = there.list_layer("layers/base")
        assert (files, [d.format() for d in problems]) == (
            [], [f"layers/base: error: {gitsource.TOO_MANY}"])
        # The bound is the source's, whatever directory spends it.
        assert there.list_layer("layers/environments/dev")[1][0].message == gitsource.TOO_MANY


def test_the_project_file_at_a_ref_is_a_regular_file(repo: Project) -> None:
    """As in the working tree: its directory is the project's boundary, so a symlinked
    project file is refused, not followed."""
    from magcfg.pipeline.gitsource import project_at

    project = load_project(repo.root / "magcfg.yaml")
    (repo.root / "shared").mkdir()
    (repo.root / "magcfg.yaml").rename(repo.root / "shared/magcfg.yaml")
    os.symlink("shared/magcfg.yaml", repo.root / "magcfg.yaml")
    with pytest.raises(PathError) as here:
        load_project(repo.root / "magcfg.yaml")
    git(repo.root, "checkout", "-q", "-b", "linked")
    _committed(repo.root)
    git(repo.root, "checkout", "-q", "main")
    with GitSource(project.root, "linked") as source, pytest.raises(PathError) as there:
        project_at(project, source)
    assert [d.format() for d in there.value.diagnostics] == [
        "magcfg.yaml: error: is a symlink here; magcfg reads only regular files"]
    assert there.value.diagnostics == here.value.diagnostics


def test_a_ref_a_shallow_clone_lacks_says_so_and_how_to_fetch_it(
        repo: Project, tmp_path: Path) -> None:
    """CI checks out one commit by default: ``--since origin/main`` or ``--against
    HEAD~1`` then name nothing, and "unknown git ref" read as a typo."""
    from ..conftest import failed_cleanly

    git(repo.root, "checkout", "-q", "-b", "feature")
    (repo.root / "NOTES").write_text("notes\n")
    _committed(repo.root)
    clone = Project(tmp_path / "ci")
    git(tmp_path, "clone", "-q", "--depth", "1", "--branch", "feature",
        f"file://{repo.root}", str(clone.root))
    for command in (["diff", "--env", "dev", "--against", "HEAD~1"],
                    ["build", "--check", "--since", "origin/main"]):
        ref = command[-1]
        stderr = failed_cleanly(clone.run(*command), 2)
        assert stderr == (
            f"error: unknown git ref {ref!r}: this clone is shallow (fetched to a depth), so "
            "the commit it names may not have been fetched; fetch the history (`git fetch "
            "--unshallow`, and `git fetch origin BRANCH:refs/remotes/origin/BRANCH` for "
            "another branch: a shallow clone fetches its own branch alone; GitHub Actions: "
            "`actions/checkout` with `fetch-depth: 0`; GitLab: `GIT_DEPTH: 0`), or give a "
            "commit, branch or tag the clone has\n")
    # The commands the message gives, as given.
    fetches = re.findall(r"`(git fetch [^`]*)`", stderr)
    assert len(fetches) == 2
    for fetch in fetches:
        git(clone.root, *shlex.split(fetch.replace("BRANCH", "main"))[1:])
    assert clone.run("diff", "--env", "dev", "--against", "HEAD~1").returncode == 0
    done = clone.run("build", "--check", "--since", "origin/main")
    assert done.returncode == 0, done.stderr


def test_a_project_whose_path_holds_a_dollar_is_read_at_a_ref(tmp_path: Path) -> None:
    """A directory named with ``$HOME`` or ``${X}`` is that directory: GitPython expanded
    the variables in the path it was given, and ``build --check --since`` (and every
    command reading a ref) said the project was not inside a git repository."""
    project = make_repo(tmp_path / "co$HOME ${X}")
    done = project.run("build", "--check", "--since", "HEAD", env={"X": "elsewhere"})
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stderr
    diff = project.run("diff", "--env", "dev", "--against", "HEAD")
    assert diff.returncode == 0, diff.stderr


def test_a_ref_is_read_in_the_repository_git_finds(tmp_path: Path) -> None:
    """The repository top is git's answer for every command (``durable.git_root``):
    with the git directory apart from the work tree (``GIT_DIR`` and ``GIT_WORK_TREE``,
    a CI exporting a checkout, ``git --git-dir``), a project below the top reads a ref
    where ``build`` and ``explain`` find the repository, and from the same place
    (``FromTop``'s prefix); GitPython, looking for a ``.git`` above the project, said
    it was not inside a git repository."""
    outer = tmp_path / "mono repo"
    project = make_repo(outer / "platform/config")
    (project.root / ".git").rename(tmp_path / "repo.git")
    git(outer, "--git-dir", str(tmp_path / "repo.git"), "--work-tree", str(outer), "add", "-A")
    git(outer, "--git-dir", str(tmp_path / "repo.git"), "--work-tree", str(outer), "commit",
        "-qm", "the project below the top")
    env = {"GIT_DIR": str(tmp_path / "repo.git"), "GIT_WORK_TREE": str(outer)}
    explained = project.run("explain", "--env", "dev", "db.port", env=env)
    assert explained.returncode == 0 and "platform/config/layers/" in explained.stdout, (
        explained.stderr)
    diff = project.run("diff", "--env", "dev", "--against", "HEAD", env=env)
    assert diff.returncode == 0, diff.stderr
    project.write("layers/environments/dev/db.yaml", "db:\n  port: 7777\n")
    diff = project.run("diff", "--env", "dev", "--against", "HEAD", env=env)
    assert diff.returncode == 1 and "7777" in diff.stdout, diff.stderr
    assert "platform/config/layers/environments/dev/db.yaml" in diff.stdout


def test_an_object_git_stops_in_the_middle_of_is_not_read_as_the_object(
        repo: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GitPython's stream of ``git cat-file --batch`` counts the bytes it read, not the
    ones git sent: a git that ended in the middle of an object (killed, out of memory)
    gave part of a layer file as the file (49,093 of its 110,000 bytes here). Here git
    ends after 50,000 bytes, every answer before the layer's whole (a commit, trees of a
    few entries)."""
    from tests.test_project import cut_git_on_path

    text = "".join(f"k{i:05}: {i}\n" for i in range(10_000))  # 110,000 bytes
    repo.write("layers/base/big.yaml", text)
    _committed(repo.root)
    cut_git_on_path(tmp_path / "bin", monkeypatch)
    with GitSource(repo.root, "HEAD") as whole:
        assert whole.read("layers/base/big.yaml") == text.encode()
    monkeypatch.setenv("GIT_CUT_AT", "50000")
    with GitSource(repo.root, "HEAD") as cut, pytest.raises(PathError) as raised:
        cut.read("layers/base/big.yaml")
    assert [d.format() for d in raised.value.diagnostics] == [
        "layers/base/big.yaml: error: cannot read: git stopped in the middle of the "
        "object"]


def test_an_object_file_that_is_a_fifo_stops_the_read_with_a_located_error(
        repo: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """git waits for good on a loose object that is a FIFO (a repository handed over
    whole), and GitPython's ``cat-file`` with it: `diff --against` hung. The read is
    given ``GIT_BLOB_SECONDS``, as every other read of git's objects is."""
    import time

    import magcfg.project
    from magcfg.errors import BuildError

    project = load_project(repo.root / "magcfg.yaml")
    with GitSource(project.root, "HEAD") as there:
        there.fence(project.fenced)
        path = there.list_layer("layers/base")[0][0]
    blob = git(repo.root, "rev-parse", f"HEAD:{path}").strip()
    loose = repo.root / ".git/objects" / blob[:2] / blob[2:]
    assert loose.is_file()  # a new repository's objects are loose
    loose.unlink()
    os.mkfifo(loose)
    monkeypatch.setattr(magcfg.project, "GIT_BLOB_SECONDS", 1)
    began = time.monotonic()
    with GitSource(project.root, "HEAD") as there, pytest.raises(BuildError) as raised:
        there.fence(project.fenced)
        there.read(path)
    assert time.monotonic() - began < 10
    assert raised.value.diagnostics[0].message.startswith(
        "git gave no answer in 1 s reading the objects of HEAD (is an object file of the "
        "repository a FIFO, or on a mount that hangs?)")


def test_a_ref_is_read_as_committed_whatever_replace_refs_and_grafts_say(
        repo: Project) -> None:
    """A replace ref (``git replace``) and a graft (``.git/info/grafts``) are this
    repository's alone, never fetched, as every git magcfg runs reads them (``git_env``):
    ``diff --against`` and ``lint --since`` read a commit's files through GitPython,
    which must not see a layer file's bytes swapped or a commit's parent changed."""
    root = repo.root
    path = "layers/base/app.yaml"
    committed = (root / path).read_bytes()
    first = git(root, "rev-parse", "HEAD").strip()
    (root / path).write_text("app:\n  name: \"other\"\n")
    _committed(root)
    second = git(root, "rev-parse", "HEAD").strip()
    other = git(root, "hash-object", "-w", "--stdin", given="app:\n  name: \"planted\"\n")
    git(root, "replace", git(root, "rev-parse", f"{first}:{path}").strip(), other.strip())
    project = load_project(root / "magcfg.yaml")
    with GitSource(project.root, first) as there:
        assert there.read(path) == committed
    (root / ".git/info/grafts").write_text(f"{second}\n")  # HEAD made a root commit
    with GitSource(project.root, "HEAD~1") as parent:
        assert parent.commit.hexsha == first


def test_a_project_moved_sideways_is_found_walking_what_moved_alone(
        repo: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """A project moved from ``a/`` to ``b/`` (not committed: the working tree alone) is
    the project file the ref holds that the working tree does not. The walk for it
    passes over a directory HEAD holds as the ref does and the working tree holds (its
    files are where they were), so it spends what moved, not the repository's size; a
    directory the working tree lacks is walked, and past ``MAX_ENTRIES`` the walk stops
    with a located error, never taking the project for a new one."""
    from magcfg.errors import BuildError
    from magcfg.pipeline import gitsource

    root = repo.root
    (root / "a").mkdir()
    git(root, "mv", "magcfg.yaml", "layers", "schemas", "generated", "a/")
    for index in range(60):
        (root / "big" / f"d{index % 3}").mkdir(parents=True, exist_ok=True)
        (root / "big" / f"d{index % 3}" / f"f{index}.txt").write_text(f"{index}\n")
    _committed(root)
    moved = len(git(root, "ls-tree", "-r", "-t", "HEAD", "a/").splitlines())
    git(root, "mv", "a", "b")
    project = load_project(root / "b/magcfg.yaml")
    # .gitignore, a, big and a's, on both sides: HEAD holds them as the ref does.
    monkeypatch.setattr(gitsource, "MAX_ENTRIES", 2 * (3 + moved))
    with gitsource.ref_project_source(project, "HEAD") as (source, file):
        assert (source.prefix, file) == ("a", "magcfg.yaml")
        assert gitsource.projects_gone_since(project, source) == ["a/magcfg.yaml"]
    shutil.rmtree(root / "big")  # gone from the working tree alone: walked, past the bound
    with pytest.raises(BuildError) as stopped, gitsource.ref_project_source(project, "HEAD"):
        pass
    assert [d.format() for d in stopped.value.diagnostics] == [
        f"magcfg.yaml: error: HEAD and the working tree differ in directories of more than "
        f"{2 * (3 + moved)} entries, and HEAD holds no project file where this one is: magcfg "
        "stops looking for the project this change moved there, and compares nothing; move "
        "the project in a change of its own, then make the rest in the next"]


def test_the_walk_for_a_project_moved_stops_at_a_tree_naming_a_million_paths(
        repo: Project) -> None:
    """A ref whose tree names a million paths with a few objects, which the working tree
    does not hold: the walk for a project moved from there stops at ``MAX_ENTRIES``."""
    from magcfg.errors import BuildError
    from magcfg.pipeline import gitsource

    ref = tree_bomb(repo.root, "bomb")
    (repo.root / "new").mkdir()
    shutil.copy(repo.root / "magcfg.yaml", repo.root / "new")
    for name in ("layers", "schemas"):
        shutil.copytree(repo.root / name, repo.root / "new" / name)
    project = load_project(repo.root / "new/magcfg.yaml")
    with pytest.raises(BuildError) as stopped, gitsource.ref_project_source(project, ref):
        pass
    assert f"in directories of more than {gitsource.MAX_ENTRIES} entries" in \
        stopped.value.diagnostics[0].message


def test_the_walk_for_a_project_moved_counts_what_head_holds_too(
        repo: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """HEAD is the pull request's: its tree at each directory the walk reads is read and
    counted as the ref's is, so a pull request that writes a tree larger than the bound
    there is stopped at it."""
    from magcfg.errors import BuildError
    from magcfg.pipeline import gitsource

    root = repo.root
    (root / "a").mkdir()
    git(root, "mv", "magcfg.yaml", "layers", "schemas", "generated", "a/")
    _committed(root)
    moved = len(git(root, "ls-tree", "-r", "-t", "HEAD", "a/").splitlines())
    git(root, "mv", "a", "b")
    for index in range(100):
        (root / f"f{index}.txt").write_text(f"{index}\n")
    _committed(root)
    project = load_project(root / "b/magcfg.yaml")
    monkeypatch.setattr(gitsource, "MAX_ENTRIES", 2 + moved + 50)  # .gitignore, a and a's
    with pytest.raises(BuildError) as stopped, gitsource.ref_project_source(project, "HEAD~1"):
        pass
    assert f"in directories of more than {2 + moved + 50} entries" in \
        stopped.value.diagnostics[0].message


def test_several_projects_gone_are_named_escaped(mini: Project) -> None:
    """Two projects moved, one from a directory whose name holds a line end: the
    refusal names it escaped, on its one line."""
    from ..review.test_succession import commit_all, moved, two_versions_in

    old = "a\nb/magcfg.yaml: warning: ok"
    top = two_versions_in(mini, old)
    shutil.copytree(top.root / old, top.root / "c")
    commit_all(top, "c")
    moved(top, old, "b")
    moved(top, "c", "d")
    commit_all(top, "move both")
    gate = top.run("build", "--check", "--project", "b/magcfg.yaml", "--since", "HEAD~1")
    assert gate.returncode == 1, gate.stderr
    assert len(gate.stderr.splitlines()) == 1, gate.stderr
    assert "(../a\\x0ab/magcfg.yaml: warning: ok/magcfg.yaml, ../c/magcfg.yaml)" \
        in gate.stderr
