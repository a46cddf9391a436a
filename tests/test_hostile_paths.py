"""A hostile repository (a pull request in CI) cannot make magcfg read or write outside
it, hang it, or leave an environment's files half replaced (magcfg/durable.py).

Every refusal is checked the same way: the exact located message, the exit code, no
traceback, and both ``generated/`` and the directories outside the repository exactly
as they were (``tree_state``).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import magcfg
from magcfg.durable import FAULT_ENV
from magcfg.lint.walk import display_name
from magcfg.signing.keys import generate_key_pair

from .conftest import MAGCFG, REPO, Project, failed_cleanly, tree_state

# ---------------------------------------------------------------- helpers


def _drop_file_capabilities() -> None:
    """In the child, before exec: root loses the capabilities that bypass file modes
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so a mode of 000 or 555 binds it as it
    binds any user."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop = 24
    for capability in (1, 2):
        if libc.prctl(pr_capbset_drop, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run(project: Project, *args: str, env: dict[str, str] | None = None,
        unprivileged: bool = False, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real console script in the project; a hang fails the test (``timeout``)."""
    preexec: Callable[[], None] | None = None
    if unprivileged and os.geteuid() == 0:
        preexec = _drop_file_capabilities
    return subprocess.run([str(MAGCFG), *args], cwd=project.root, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=timeout,
                          preexec_fn=preexec)


def build(project: Project) -> None:
    magcfg.build(magcfg.load_project(project.root / "magcfg.yaml"))


def outside(tmp_path: Path) -> Path:
    """A directory outside the repository with files of its own."""
    directory = tmp_path / "outside"
    (directory / "sub").mkdir(parents=True)
    (directory / "keep.txt").write_text("not magcfg's\n")
    (directory / "sub" / "deep.txt").write_text("nor this\n")
    return directory


class Untouched:
    """Records trees before a command; ``check()`` asserts they are exactly as they were."""

    def __init__(self, *paths: Path) -> None:
        self.before = {path: tree_state(path) for path in paths}

    def check(self) -> None:
        for path, state in self.before.items():
            assert tree_state(path) == state, path


def refused(done: subprocess.CompletedProcess[str], line: str, code: int = 1) -> None:
    stderr = failed_cleanly(done, code)
    assert line in stderr.splitlines(), stderr


def project_with(mini: Project, old: str, new: str) -> None:
    text = (mini.root / "magcfg.yaml").read_text()
    assert old in text
    mini.write("magcfg.yaml", text.replace(old, new))


# ---------------------------------------------------------------- the output directory


SYMLINKED_OUTPUT = ("generated/dev: error: is a symlink; magcfg writes only into real "
                    "directories inside the repository")


@pytest.mark.parametrize("args", [("build",), ("build", "--check"), ("build", "-e", "dev")])
def test_output_directory_symlinked_outside_is_refused(mini: Project, tmp_path: Path,
                                                       args: tuple[str, ...]) -> None:
    build(mini)
    away = outside(tmp_path)
    shutil.rmtree(mini.root / "generated/dev")
    os.symlink(away, mini.root / "generated/dev")
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: changed\n")
    kept = Untouched(away, mini.root / "generated")
    done = run(mini, *args)
    refused(done, SYMLINKED_OUTPUT)
    assert "stale:" not in done.stderr and "keep.txt" not in done.stderr
    kept.check()


def test_output_root_symlinked_is_a_project_file_error(mini: Project, tmp_path: Path) -> None:
    away = outside(tmp_path)
    os.symlink(away, mini.root / "generated")
    kept = Untouched(away, mini.root / "generated")
    refused(run(mini, "build"),
            "magcfg.yaml:10: error: output must be a directory of its own inside the project "
            "for artifacts: generated is a symlink; magcfg writes only into real directories "
            "inside the repository [output]")
    kept.check()


@pytest.mark.parametrize("command", ["sign", "verify", "check-env"])
def test_sign_verify_and_check_env_refuse_a_symlinked_output(mini: Project, tmp_path: Path,
                                                             command: str) -> None:
    build(mini)
    keys = tmp_path / "keys"
    generate_key_pair(keys)
    away = tmp_path / "outside"
    shutil.copytree(mini.root / "generated/dev", away)
    shutil.rmtree(mini.root / "generated/dev")
    os.symlink(away, mini.root / "generated/dev")
    kept = Untouched(away, mini.root / "generated")
    args = {"sign": ("sign", "-e", "dev", "--key", str(keys / "magcfg.key")),
            "verify": ("verify", "-e", "dev", "--public-key", str(keys / "magcfg.pub")),
            "check-env": ("check-env", "-e", "dev")}[command]
    refused(run(mini, *args), SYMLINKED_OUTPUT)
    kept.check()


@pytest.mark.parametrize(("output", "message"), [
    ("layers/environments", "it overlaps layers/environments/dev (layers.1.path), which "
                            "magcfg reads"),
    ("layers", "it overlaps layers/base (layers.0.path), which magcfg reads"),
    ("layers/base/out", "it overlaps layers/base (layers.0.path), which magcfg reads"),
    ("schemas/schema.json", "it overlaps schemas/schema.json (schema.json), which magcfg reads"),
    ("layers/..", "it is the project root itself"),
    (".", "it is the project root itself"),
    (".git", "it is inside .git"),
    ("sub/.GIT/x", "it is inside .git"),
    ("magcfg.yaml", "it overlaps the project file, which magcfg reads"),
    ("README.md", "README.md is a file; magcfg writes into a directory here"),
    ("/tmp/out", "it is absolute"),
])
def test_output_overlapping_what_magcfg_reads_is_refused(mini: Project, output: str,
                                                         message: str) -> None:
    mini.write("README.md", "# read me\n")
    (mini.root / ".git").mkdir()
    project_with(mini, "output: generated", f"output: {output}")
    kept = Untouched(mini.root)
    refused(run(mini, "build"), "magcfg.yaml:10: error: output must be a directory of its own "
            f"inside the project for artifacts: {message} [output]")
    kept.check()


@pytest.mark.parametrize(("old", "new", "line"), [
    ("path: layers/base", "path: 'layers/base.'",
     "magcfg.yaml:5: error: layer paths must stay inside the project: {why} [layers.0.path]"),
    ('path: "layers/environments/{env}"', 'path: "layers/environments /{env}"',
     "magcfg.yaml:7: error: layer paths must stay inside the project: {why} [layers.1.path]"),
    ("json: schemas/schema.json", "json: 'schemas/schema.json '",
     "magcfg.yaml:9: error: schema paths are files inside the project: {why} [schema.json]"),
    ("output: generated", "output: generated.",
     "magcfg.yaml:10: error: output must be a directory of its own inside the project for "
     "artifacts: {why} [output]"),
])
def test_a_name_ending_in_a_dot_or_space_is_refused(mini: Project, old: str, new: str,
                                                    line: str) -> None:
    """Windows drops a name's trailing dots and spaces: ``layers/base.`` is an empty layer
    on Linux (nothing is there) and ``layers/base`` on Windows, so the two built, and
    signed, other bytes."""
    build(mini)
    project_with(mini, old, new)
    kept = Untouched(mini.root)
    refused(run(mini, "build"), line.format(
        why="a name in it ends in a dot or space, which Windows drops: a checkout there "
            "would use another path"))
    kept.check()


@pytest.mark.parametrize(("cache", "message"), [
    (".git/magcfg", "it is inside .git"),
    ("generated/dev", "it overlaps generated, where magcfg writes too"),
    ("generated", "it overlaps generated, where magcfg writes too"),
    ("layers/base/.cache", "it overlaps layers/base (layers.0.path), which magcfg reads"),
    (".", "it is the project root itself"),
])
def test_cache_overlapping_git_output_or_layers_is_refused(mini: Project, cache: str,
                                                           message: str) -> None:
    build(mini)
    (mini.root / ".git").mkdir()
    project_with(mini, "output: generated\n", f"output: generated\ncache: {cache}\n")
    kept = Untouched(mini.root)
    refused(run(mini, "build"), "magcfg.yaml:11: error: cache must be a directory of its own "
            f"inside the project for the build cache: {message} [cache]")
    kept.check()


def test_cache_directory_symlinked_outside_is_refused(mini: Project, tmp_path: Path) -> None:
    build(mini)
    away = outside(tmp_path)
    shutil.rmtree(mini.root / ".magcfg-cache", ignore_errors=True)
    os.symlink(away, mini.root / ".magcfg-cache")
    kept = Untouched(away, mini.root / "generated")
    refused(run(mini, "build"),
            "magcfg.yaml: error: cache (not set: the default .magcfg-cache) must be a "
            "directory of its own inside the project for the build cache: .magcfg-cache is a "
            "symlink; magcfg writes only into real directories inside the repository [cache]")
    kept.check()


# ---------------------------------------------------------------- sibling directories


@pytest.mark.parametrize(("old", "new", "line"), [
    ("output: generated", "output: ../proj-evilout",
     "magcfg.yaml:10: error: output must be a directory of its own inside the project for "
     "artifacts: it leads outside the project [output]"),
    ("output: generated\n", "output: generated\ncache: ../proj-evilcache\n",
     "magcfg.yaml:11: error: cache must be a directory of its own inside the project for "
     "the build cache: it leads outside the project [cache]"),
    ("path: layers/base", "path: ../proj-evil",
     "magcfg.yaml:5: error: layer paths must stay inside the project: it leads outside the "
     "project [layers.0.path]"),
    ("json: schemas/schema.json", "json: ../proj-evil.json",
     "magcfg.yaml:9: error: schema paths are files inside the project: it leads outside the "
     "project [schema.json]"),
])
def test_sibling_whose_name_starts_with_the_repository_name_is_outside(
        mini: Project, tmp_path: Path, old: str, new: str, line: str) -> None:
    assert mini.root.name == "proj"
    (tmp_path / "proj-evil").mkdir()
    (tmp_path / "proj-evil" / "magds.yaml").write_text("magds:\n  host: evil\n")
    (tmp_path / "proj-evil.json").write_text("{}\n")
    build(mini)
    project_with(mini, old, new)
    kept = Untouched(tmp_path)
    refused(run(mini, "build"), line)
    kept.check()
    assert not (tmp_path / "proj-evilout").exists()


# ---------------------------------------------------------------- reading through symlinks


def test_layer_directory_symlinked_outside_is_refused(mini: Project, tmp_path: Path) -> None:
    build(mini)
    away = tmp_path / "outside"
    shutil.move(mini.root / "layers/base", away)
    os.symlink(away, mini.root / "layers/base")
    kept = Untouched(away, mini.root / "generated")
    refused(run(mini, "build"), "layers/base: error: symlink leads outside the repository")
    kept.check()


def test_directory_above_a_layer_symlinked_outside_is_refused(mini: Project,
                                                              tmp_path: Path) -> None:
    build(mini)
    away = tmp_path / "outside"
    shutil.move(mini.root / "layers", away)
    os.symlink(away, mini.root / "layers")
    kept = Untouched(away, mini.root / "generated")
    done = run(mini, "build")
    refused(done, "layers/base: error: symlink leads outside the repository")
    refused(done, "layers/environments/dev: error: symlink leads outside the repository")
    kept.check()


def test_schema_symlinked_from_outside_is_refused(mini: Project, tmp_path: Path) -> None:
    build(mini)
    away = tmp_path / "outside"
    away.mkdir()
    shutil.move(mini.root / "schemas/schema.json", away / "schema.json")
    os.symlink(away / "schema.json", mini.root / "schemas/schema.json")
    kept = Untouched(away, mini.root / "generated")
    refused(run(mini, "build"),
            "schemas/schema.json: error: symlink leads outside the repository")
    kept.check()


def test_layer_symlinked_into_git_is_never_read(mini: Project) -> None:
    """.git/config holds the CI's token (actions/checkout); a parse error would quote it."""
    build(mini)
    token = "CANARY-ghs-token-8d7c"
    mini.write(".git/config", f"[http]\n\textraheader = AUTHORIZATION: basic {token}\n")
    os.symlink("../../.git/config", mini.root / "layers/base/creds.yaml")
    kept = Untouched(mini.root / "generated")
    done = run(mini, "build")
    refused(done, "layers/base/creds.yaml: error: symlink leads into .git, which magcfg does "
            "not read (.git, the output and the cache are off limits)")
    assert token not in done.stdout + done.stderr
    kept.check()


@pytest.mark.parametrize(("make", "line"), [
    (lambda base: os.symlink("loop.yaml", base / "loop.yaml"),
     "layers/base/loop.yaml: error: symlink loop (too many levels of symbolic links)"),
    (lambda base: os.symlink("..", base / "up"),
     "layers/base/up: error: symlink loop: it leads to a directory that contains it"),
    (lambda base: os.symlink("gone.yaml", base / "dangling.yaml"),
     "layers/base/dangling.yaml: error: dangling symlink: its target does not exist"),
    (lambda base: os.mkfifo(base / "fifo.yaml"),
     "layers/base/fifo.yaml: error: is a FIFO, not a regular file"),
    (lambda base: (base / "dir.yaml").mkdir() or os.mkfifo(base / "dir.yaml" / "x.yaml"),
     "layers/base/dir.yaml/x.yaml: error: is a FIFO, not a regular file"),
    (lambda base: os.mkfifo(base / "f") or os.symlink("f", base / "link.yaml"),
     "layers/base/link.yaml: error: symlink to a FIFO, not a regular file"),
    # Sparse: a file of any size costs nothing to plant, and nothing to refuse unread.
    (lambda base: (base / "huge.yaml").write_bytes(b"")
     or os.truncate(base / "huge.yaml", (256 << 20) + 1),
     "layers/base/huge.yaml: error: is larger than 268435456 bytes"),
], ids=["file-loop", "directory-loop", "dangling", "fifo", "fifo-below", "link-to-fifo",
        "huge"])
def test_layer_entries_that_are_no_regular_file(mini: Project,
                                                make: Callable[[Path], object],
                                                line: str) -> None:
    build(mini)
    make(mini.root / "layers/base")
    kept = Untouched(mini.root / "generated")
    refused(run(mini, "build"), line)
    kept.check()


def test_a_schema_larger_than_magcfg_reads_is_refused_unread(mini: Project) -> None:
    build(mini)
    os.truncate(mini.root / "schemas/schema.json", 3 << 30)
    kept = Untouched(mini.root / "generated")
    refused(run(mini, "build"), "schemas/schema.json: error: is larger than 268435456 bytes")
    kept.check()


def test_fifo_schema_does_not_hang(mini: Project) -> None:
    build(mini)
    (mini.root / "schemas/schema.json").unlink()
    os.mkfifo(mini.root / "schemas/schema.json")
    kept = Untouched(mini.root / "generated")
    refused(run(mini, "build"), "schemas/schema.json: error: is a FIFO, not a regular file")
    kept.check()


@pytest.mark.parametrize("kind", ["fifo", "symlink"])
def test_project_file_must_be_a_regular_file(mini: Project, tmp_path: Path, kind: str) -> None:
    build(mini)
    away = tmp_path / "outside"
    away.mkdir()
    shutil.move(mini.root / "magcfg.yaml", away / "magcfg.yaml")
    if kind == "fifo":
        os.mkfifo(mini.root / "magcfg.yaml")
        line = "magcfg.yaml: error: is a FIFO, not a regular file"
    else:
        os.symlink(away / "magcfg.yaml", mini.root / "magcfg.yaml")
        line = "magcfg.yaml: error: is a symlink here; magcfg reads only regular files"
    kept = Untouched(away, mini.root / "generated")
    refused(run(mini, "build"), line)
    kept.check()


def test_public_key_outside_the_repository_is_refused(mini: Project, tmp_path: Path) -> None:
    build(mini)
    generate_key_pair(tmp_path / "keys")
    mini.write("magcfg.yaml", (mini.root / "magcfg.yaml").read_text()
               + f"signing:\n  public_keys: [{tmp_path / 'keys/magcfg.pub'}]\n")
    line = (mini.root / "magcfg.yaml").read_text().count("\n")
    # Refused where the project file names it, by every command that loads it (the CI
    # gate included), not only by verify.
    for command in (["verify", "-e", "dev"], ["build", "--check"]):
        refused(run(mini, *command),
                f"magcfg.yaml:{line}: error: public keys are files inside the project: it is "
                "absolute [signing.public_keys.0]")
    mini.write("magcfg.yaml", (mini.root / "magcfg.yaml").read_text().replace(
        str(tmp_path / "keys/magcfg.pub"), "../keys/magcfg.pub"))
    refused(run(mini, "verify", "-e", "dev"),
            f"magcfg.yaml:{line}: error: public keys are files inside the project: it leads "
            "outside the project [signing.public_keys.0]")


# ---------------------------------------------------------------- artifact files


def _signed(mini: Project, tmp_path: Path) -> Path:
    build(mini)
    keys = tmp_path / "keys"
    generate_key_pair(keys)
    done = run(mini, "sign", "-e", "dev", "--key", str(keys / "magcfg.key"))
    assert done.returncode == 0, done.stderr
    return keys


@pytest.mark.parametrize("command", ["verify", "sign", "check-env", "build"])
def test_fifo_in_the_artifact_does_not_hang(mini: Project, tmp_path: Path,
                                            command: str) -> None:
    keys = _signed(mini, tmp_path)
    (mini.root / "generated/dev/config.json").unlink()
    os.mkfifo(mini.root / "generated/dev/config.json")
    if command == "build":  # the previous manifest is what the build reads
        (mini.root / "generated/dev/manifest.json").unlink()
        os.mkfifo(mini.root / "generated/dev/manifest.json")
    kept = Untouched(mini.root / "generated")
    args = {"verify": ("verify", "-e", "dev", "--public-key", str(keys / "magcfg.pub")),
            "sign": ("sign", "-e", "dev", "--key", str(keys / "magcfg.key")),
            "check-env": ("check-env", "-e", "dev"),
            "build": ("build",)}[command]
    done = run(mini, *args)
    line = {"verify": "generated/dev/config.json: error: is a FIFO, not a regular file",
            "sign": "generated/dev/config.json: error: is a FIFO, not a regular file",
            "check-env": "generated/dev/config.json: error: cannot read the artifact: is a "
                         "FIFO, not a regular file",
            "build": "generated/dev/manifest.json: error: is a FIFO, not a regular file"}
    refused(done, line[command])
    kept.check()


def test_signature_is_kept_while_the_manifest_it_signs_is_unchanged(mini: Project,
                                                                    tmp_path: Path) -> None:
    _signed(mini, tmp_path)
    kept = Untouched(mini.root / "generated")
    done = run(mini, "build")
    assert done.returncode == 0 and "(0 file(s) changed)" in done.stderr, done.stderr
    kept.check()
    assert run(mini, "build", "--check").returncode == 0


# ---------------------------------------------------------------- what a build deletes


def test_file_magcfg_did_not_write_stops_the_build(mini: Project) -> None:
    build(mini)
    mini.write("generated/dev/notes.txt", "mine\n")
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: changed\n")
    kept = Untouched(mini.root / "generated")
    line = ("generated/dev/notes.txt: error: not written by magcfg: move or delete it "
            "yourself (magcfg replaces generated/dev as a whole and deletes only the files "
            "it wrote)")
    refused(run(mini, "build"), line)
    refused(run(mini, "build", "--check"), line)
    kept.check()


def test_directory_in_the_output_is_never_deleted(mini: Project) -> None:
    build(mini)
    mini.write("generated/dev/config.json.d/inner.json", "{}\n")
    os.rename(mini.root / "generated/dev/config.json.d", mini.root / "generated/dev/keep")
    kept = Untouched(mini.root / "generated")
    refused(run(mini, "build"), "generated/dev/keep: error: not written by magcfg: move or "
            "delete it yourself (magcfg replaces generated/dev as a whole and deletes only "
            "the files it wrote)")
    kept.check()


def test_names_are_escaped_in_every_message(mini: Project) -> None:
    build(mini)
    red = "\x1b[31mred"
    mini.write(f"layers/base/{red}.yaml", "a: [\n")
    mini.write(f"generated/dev/{red}.txt", "x\n")
    kept = Untouched(mini.root / "generated")
    done = run(mini, "build")
    refused(done, "layers/base/\\x1b[31mred.yaml:2: error: YAML syntax error: did not find "
            "expected node content (while parsing a flow node)")
    assert "\x1b" not in done.stdout + done.stderr
    (mini.root / f"layers/base/{red}.yaml").unlink()
    done = run(mini, "build", "--check")
    refused(done, "generated/dev/\\x1b[31mred.txt: error: not written by magcfg: move or "
            "delete it yourself (magcfg replaces generated/dev as a whole and deletes only "
            "the files it wrote)")
    assert "\x1b" not in done.stdout + done.stderr
    kept.check()


def test_a_project_directory_name_is_escaped_in_the_command_advised(mini: Project,
                                                                    tmp_path: Path) -> None:
    """A monorepo's project below a directory whose name holds a line end: the
    `--project` of the build and the sign that build --check and verify advise names
    it escaped, as every name in the message is (it printed the line end raw, inside
    the quotes: a line of CI's log forged)."""
    top = tmp_path / "mono"
    below = top / "pl\nsvc/generated/dev/manifest.json: ok"
    below.parent.mkdir(parents=True)
    shutil.move(mini.root, below)
    subprocess.run(["git", "init", "-q"], cwd=top, check=True)
    project = str(below.relative_to(top) / "magcfg.yaml")
    assert Project(top).run("build", "--project", project).returncode == 0
    (below / "layers/base/logging.yaml").write_text("logging:\n  level: debug\n")
    keys = tmp_path / "keys"
    generate_key_pair(keys)
    for args in (("build", "--check"), ("verify", "--public-key", str(keys / "magcfg.pub"))):
        done = Project(top).run(*args, "--project", project)
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
        assert "run `magcfg" in done.stderr, done.stderr
        assert [line for line in done.stderr.splitlines()
                if line.startswith("svc/")] == [], done.stderr


def test_file_name_that_is_not_utf8(mini: Project) -> None:
    build(mini)
    name = os.fsencode(mini.root / "layers/base") + b"/\xff.yaml"
    with open(name, "wb") as fh:
        fh.write(b"magds:\n  host: x\n")
    with open(os.fsencode(mini.root / "generated/dev") + b"/\xfe.txt", "wb") as fh:
        fh.write(b"x\n")
    kept = Untouched(mini.root / "generated")
    done = run(mini, "build")
    refused(done, "layers/base/\\xff.yaml: error: file name is not valid UTF-8; rename it")
    os.unlink(name)
    refused(run(mini, "build"), "generated/dev/\\xfe.txt: error: not written by magcfg: move "
            "or delete it yourself (magcfg replaces generated/dev as a whole and deletes "
            "only the files it wrote)")
    kept.check()


# ---------------------------------------------------------------- unreadable, unwritable


@pytest.mark.parametrize(("rel", "line"), [
    ("layers/base/magds.yaml", "layers/base/magds.yaml: error: cannot read: permission denied"),
    ("magcfg.yaml", "magcfg.yaml: error: cannot read: permission denied"),
    ("generated/dev/manifest.json",
     "generated/dev/manifest.json: error: cannot read: permission denied"),
])
def test_unreadable_file_is_a_located_error(mini: Project, rel: str, line: str) -> None:
    build(mini)
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: changed\n")
    (mini.root / rel).chmod(0)
    kept = Untouched(mini.root / "generated")
    refused(run(mini, "build", unprivileged=True), line)
    kept.check()


def test_read_only_output_is_a_located_error(mini: Project) -> None:
    build(mini)
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: changed\n")
    for rel in ("generated", "generated/dev"):
        (mini.root / rel).chmod(0o555)
    kept = Untouched(mini.root / "generated")
    refused(run(mini, "build", unprivileged=True),
            "generated/dev: error: cannot write: permission denied; nothing was changed")
    kept.check()


# ---------------------------------------------------------------- all or nothing


def _changed_layers(mini: Project) -> None:
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: changed\n")
    mini.write("layers/environments/prod/logging.yaml", "logging:\n  level: error\n")


def _twin(mini: Project, tmp_path: Path) -> Project:
    """A copy of the project as it is now (generated/ and cache included)."""
    twin = Project(tmp_path / "twin")
    shutil.copytree(mini.root, twin.root, symlinks=True)
    return twin


def _leftovers(mini: Project) -> list[str]:
    return sorted(n for n in os.listdir(mini.root / "generated") if n.startswith("."))


def test_kill_after_staging_leaves_every_environment_as_it_was(mini: Project,
                                                              tmp_path: Path) -> None:
    build(mini)
    _changed_layers(mini)
    twin = _twin(mini, tmp_path)
    kept = Untouched(mini.root / "generated/dev", mini.root / "generated/prod")
    done = run(mini, "build", env={FAULT_ENV: "kill@staged"})
    assert done.returncode == -9, done.stderr
    kept.check()  # dev was staged beside generated/dev, prod perhaps too: nothing swapped
    # The environments are staged at once: prod's copy may be there, whole or in part.
    assert sorted(n.split("-")[1] for n in _leftovers(mini)) in (["new"], ["new", "new"])
    done = run(mini, "build")
    assert done.returncode == 0, done.stderr
    assert _leftovers(mini) == []
    assert run(twin, "build").returncode == 0
    assert tree_state(mini.root / "generated") == tree_state(twin.root / "generated")


def test_kill_between_the_two_renames_is_recovered(mini: Project) -> None:
    """Where the filesystem has no atomic exchange: the old directory is moved aside, then
    the new one into place. Killed between the two, the next run puts the old one back
    before it reads the previous manifest (the version must not restart at 1)."""
    build(mini)
    original = (mini.root / "layers/environments/dev/magds.yaml").read_text()
    before = Untouched(mini.root / "generated")
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: changed\n")
    done = run(mini, "build", env={FAULT_ENV: "no-exchange,kill@aside"})
    assert done.returncode == -9, done.stderr
    assert not (mini.root / "generated/dev").exists()
    assert [n.split("-")[1] for n in _leftovers(mini)] == ["new", "old"]
    mini.write("layers/environments/dev/magds.yaml", original)  # back to what was built
    done = run(mini, "build")
    assert done.returncode == 0 and "(0 file(s) changed)" in done.stderr, done.stderr
    before.check()  # the old directory, back in place, byte for byte and mode for mode


def test_two_renames_give_the_same_tree(mini: Project, tmp_path: Path) -> None:
    build(mini)
    _changed_layers(mini)
    twin = _twin(mini, tmp_path)
    done = run(mini, "build", env={FAULT_ENV: "no-exchange"})
    assert done.returncode == 0, done.stderr
    assert run(twin, "build").returncode == 0
    assert _leftovers(mini) == []
    assert tree_state(mini.root / "generated") == tree_state(twin.root / "generated")
    manifest = json.loads((mini.root / "generated/dev/manifest.json").read_bytes())
    assert manifest["version"] == 2


def test_disk_full_while_writing_changes_nothing(mini: Project) -> None:
    build(mini)
    _changed_layers(mini)
    kept = Untouched(mini.root / "generated")
    refused(run(mini, "build", env={FAULT_ENV: "enospc@write"}),
            "generated/dev: error: cannot write: no space left on device; nothing was changed")
    kept.check()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB tmpfs. It needs CAP_SYS_ADMIN, which the machines this suite runs on
    (CI containers, root) have; elsewhere this test fails rather than skip, since a real
    ENOSPC is what it is for."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                          capture_output=True, check=False)
    assert done.returncode == 0, (
        f"cannot mount a tmpfs (needs root / CAP_SYS_ADMIN): {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_real_full_disk_changes_nothing(mini: Project, small_disk: Path) -> None:
    project = Project(small_disk / "proj")
    shutil.copytree(mini.root, project.root)
    build(project)
    fd = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    _changed_layers(project)
    kept = Untouched(project.root / "generated")
    refused(run(project, "build"),
            "generated/dev: error: cannot write: no space left on device; nothing was changed")
    kept.check()


# ---------------------------------------------------------------- the project file


@pytest.mark.parametrize(("extra", "line"), [
    ("runtime: 5\n", "magcfg.yaml:11: error: runtime must be a mapping, not a number [runtime]"),
    ("cue: [a]\n", "magcfg.yaml:11: error: cue must be a mapping, not a list [cue]"),
    ("promote: everything\n",
     "magcfg.yaml:11: error: promote must be a mapping, not a string [promote]"),
    ("signing: true\n", "magcfg.yaml:11: error: signing must be a mapping, not a boolean "
                        "[signing]"),
])
def test_feature_section_of_the_wrong_type(mini: Project, extra: str, line: str) -> None:
    mini.write("magcfg.yaml", (mini.root / "magcfg.yaml").read_text() + extra)
    refused(run(mini, "build"), line)


@pytest.mark.parametrize(("version", "shown"), [("true", "True"), ("1.0", "1.0"),
                                                ('"1"', "'1'"), ("2", "2")])
def test_version_must_be_the_integer_1(mini: Project, version: str, shown: str) -> None:
    project_with(mini, "version: 1", f"version: {version}")
    refused(run(mini, "build"), "magcfg.yaml:1: error: this magcfg reads project files of "
            f"version 1 (the integer 1), not {shown} [version]")


@pytest.mark.parametrize(("char", "name"), [("\x00", "0000"), ("\x07", "0007"),
                                            ("\x1b", "001B")])
def test_control_character_in_the_project_file(mini: Project, char: str, name: str) -> None:
    project_with(mini, "output: generated", f'output: "gen{char}erated"')
    refused(run(mini, "build"), f"magcfg.yaml:10: error: control character U+{name} is not "
                                "allowed in the project file")


# ---------------------------------------------------------------- the cue binary


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                   env={**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
                        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"})


def _cue_project(mini: Project, tmp_path: Path) -> tuple[dict[str, str], Path]:
    """mini with a CUE schema, in a git repository, with a PATH that has git but no cue."""
    project_with(mini, "  json: schemas/schema.json\n",
                 "  json: schemas/schema.json\n  cue: schemas/extra.cue\n"
                 "  cue_definition: \"#Config\"\n")
    mini.write("schemas/extra.cue", "package extra\n\n#Config: {\n\tmagds: {port?: int, ...}\n\t...\n}\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(shutil.which("git") or "/usr/bin/git", bin_dir / "git")
    marker = tmp_path / "planted-cue-ran"
    return {"PATH": str(bin_dir), "MAGCFG_CUE": ""}, marker


def test_committed_tools_cue_is_never_run(mini: Project, tmp_path: Path) -> None:
    env, marker = _cue_project(mini, tmp_path)
    planted = mini.write(".tools/bin/cue", f'#!/bin/sh\ntouch "{marker}"\n'
                                           'echo "cue version v0.14.1"\n')
    planted.chmod(0o755)
    _git(mini.root, "init", "-q")
    _git(mini.root, "add", "-A")
    _git(mini.root, "commit", "-qm", "a pull request")
    done = run(mini, "build", env=env)
    stderr = failed_cleanly(done)
    assert stderr.startswith("schemas/extra.cue: error: this file needs the cue CLI (v0.14.1 or "
                             "newer), but the `cue` command was not found on PATH, and "
                             ".tools/bin/cue is not used: the repository commits files under "
                             ".tools/ (a commit could plant the binary); "), stderr
    assert not marker.exists()


def test_untracked_tools_cue_is_used(mini: Project, tmp_path: Path) -> None:
    env, _ = _cue_project(mini, tmp_path)
    real = shutil.which("cue") or shutil.which("cue", path=str(REPO / ".tools/bin"))
    assert real is not None
    (mini.root / ".tools/bin").mkdir(parents=True)
    os.symlink(real, mini.root / ".tools/bin/cue")
    mini.write(".gitignore", ".tools/\n")
    _git(mini.root, "init", "-q")
    _git(mini.root, "add", "-A")
    _git(mini.root, "commit", "-qm", "setup")
    done = run(mini, "build", env=env)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------- lint


def test_lint_skips_a_fifo_and_reports_escaped_names(mini: Project) -> None:
    os.mkfifo(mini.root / "layers/base/pipe.env")
    mini.write("deploy/\x1b[2Jclear.yaml", "password: hunter2\n")
    done = run(mini, "lint")
    assert done.returncode == 1, done.stderr
    assert "deploy/\\x1b[2Jclear.yaml:1:" in done.stdout, done.stdout
    assert "\x1b" not in done.stdout + done.stderr
    report = json.loads(run(mini, "lint", "--format", "json").stdout)
    assert {f["file"] for f in report["findings"]} == {"deploy/\\x1b[2Jclear.yaml"}


def test_lint_of_paths_checks_files_whose_names_are_escaped(mini: Project) -> None:
    # The pre-commit hook passes the changed files' names; CI may pass `.`: a name with a
    # control character or a byte that is not UTF-8 is escaped when shown, and must be
    # checked all the same (it once dropped out of every run given a path).
    names = ["plain", "esc\x1bx", "cr\rx", "nl\nx", "tab\tx", "bidi\u202ex", "esc\\x1bx",
             os.fsdecode(b"bad\xffx")]
    (mini.root / "deploy").mkdir()
    for name in names:
        with open(os.fsencode(mini.root / f"deploy/{name}.yaml"), "w") as fh:
            fh.write('password: "CANARYs3cretValue9f8e7d"\n')
    _git(mini.root, "init", "-q")  # the lint root of `lint deploy` is then the project's
    # Each its own name: a literal `\x1b` shows its backslash doubled (lint.walk.display_name).
    shown = {f"deploy/{display_name(name)}.yaml" for name in names}
    assert len(shown) == len(names) and "deploy/esc\\\\x1bx.yaml" in shown
    whole = json.loads(run(mini, "lint", "--format", "json").stdout)
    assert {f["file"] for f in whole["findings"]} == shown
    for args in ((".",), ("deploy",), tuple(f"deploy/{name}.yaml" for name in names)):
        done = run(mini, "lint", "--format", "json", *args)
        assert done.returncode == 1, done.stderr
        report = json.loads(done.stdout)
        assert {f["file"] for f in report["findings"]} == shown, args
        assert report["summary"]["files"] == (
            whole["summary"]["files"] if args == (".",) else len(names)), args
