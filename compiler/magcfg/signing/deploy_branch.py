"""Publish signed artifacts to the branch a GitOps controller syncs (docs/signing.md,
"Delivery").

CI on ``main`` builds, signs and then publishes: one commit on the deploy branch whose
tree is the source commit's tree with each environment's ``generated/<env>/`` as signed
in the workspace. Every environment published is verified first with the project's
trusted keys, so the deploy branch never holds a build without its signature; an
artifact directory the branch holds signed and the source commit unsigned (another
environment, another project of the repository, signed in CI and never committed) is
kept as the branch holds it if it verifies with the same keys. The
private key is not needed here (and never reaches git): only what ``sign`` wrote is
committed. The commit message carries ``[skip ci]`` (``SKIP_CI``), so publishing does not
trigger CI again, on a deploy branch CI runs on too.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import tempfile
import threading
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..artifact import MANIFEST, MAX_FILES, SIGNATURE, size_limit
from ..durable import git_env, read_regular, real_directory
from ..errors import BuildError, Diagnostic, UsageError, no_new_task
from ..project import GITLINK_MODE, SYMLINK_MODE, Project, git_object_id, project_option
from .directory import too_many_entries, verify_artifact, verify_whole
from .signatures import VerificationError
from .versions import SuccessionError, check_succession

SKIP_CI = "[skip ci]"
"""The marker every CI a project runs documents as skipping the pipeline of the commit
that carries it: GitHub Actions (in lowercase only), GitLab, Woodpecker and Azure
Pipelines; the pipelines ``init --ci`` writes run on every push, the deploy branch's too."""
_NOT_FILES = {SYMLINK_MODE: "a symlink", GITLINK_MODE: "a submodule"}
"""What git's index may hold below the output besides files, as ``git add`` keeps it."""
_IDENTITY = {"GIT_AUTHOR_NAME": "magcfg publish", "GIT_AUTHOR_EMAIL": "magcfg@localhost",
             "GIT_COMMITTER_NAME": "magcfg publish", "GIT_COMMITTER_EMAIL": "magcfg@localhost"}


@dataclass(frozen=True)
class Published:
    branch: str
    commit: str | None  # None: the deploy branch already held exactly these artifacts
    source: str
    versions: dict[str, int]
    pushed: bool


GIT_SECONDS = 300
"""How long one git command may take (a push to a slow remote included) before publish
fails, naming it."""


def _git(root: str, *args: str, env: dict[str, str] | None = None,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              env=git_env({**os.environ, **(env or {})}),
                              timeout=GIT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        raise BuildError(f"git {args[0]} gave no answer in {GIT_SECONDS} s: nothing was "
                         "published past it; fix what stops git, then publish again"
                         ) from None
    if check and done.returncode != 0:
        raise BuildError(f"git {args[0]} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done


def _as_verified(root: str, output: str, verified: list[str], index: dict[str, str]
                 ) -> None:
    """A ``BuildError`` naming each file below the ``verified`` directories (of
    ``output``) that the ``index`` holds other bytes of than the work tree, where the
    artifacts were verified: ``git add`` applies
    the clean side of ``.gitattributes`` (``ident``, ``text``, ``working-tree-encoding``,
    a filter), which a pull request may set for ``generated/`` below init's lines."""
    # As bytes: a name below the output need not be UTF-8.
    try:
        listed = subprocess.run(["git", "ls-files", "-s", "-z", "--", *verified], cwd=root,
                                capture_output=True, env=git_env({**os.environ, **index}),
                                timeout=GIT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        raise BuildError(f"git ls-files gave no answer in {GIT_SECONDS} s: fix what stops "
                         "git, then publish again") from None
    if listed.returncode != 0:
        raise BuildError(f"git ls-files failed: {os.fsdecode(listed.stderr).strip()}")
    changed = []
    links = []
    for entry in filter(None, listed.stdout.split(b"\0")):
        # "<mode> <object> <stage>\t<path>", the path relative to root.
        head, _, name = entry.partition(b"\t")
        mode, object_id = head.decode("ascii", "replace").split(" ")[:2]
        path = os.fsdecode(name)
        if mode in _NOT_FILES:
            # A verified artifact holds regular files alone. Where the commit holds a
            # link and the checkout has no symlinks (core.symlinks=false) the work tree
            # holds a file of the target's text, and where it holds a submodule the
            # directory the build wrote: git adds each as the commit holds it.
            links.append((path, mode))
            continue
        try:
            held = read_regular(os.path.join(root, path))
        except OSError:
            continue  # not in the work tree: git add took nothing from there
        if object_id != git_object_id(held, object_id):
            changed.append(path)
    problems = [Diagnostic(
        path, None, None, f"git would commit {_NOT_FILES[mode]} (mode {mode}, as the commit "
        "holds it) where verified files are, so the deploy branch would not hold the "
        "signed artifact: commit the files themselves", code="path") for path, mode in links]
    problems += [Diagnostic(
        path, None, None, "git would commit other bytes than the verified ones, "
        "converted by a .gitattributes (ident, text or eol, working-tree-encoding, or a "
        "filter), so the deploy branch would not hold the signed artifact: give "
        f"{output}/** `-text -ident -working-tree-encoding -filter` in the deepest "
        ".gitattributes that sets them", code="path") for path in changed]
    if problems:
        raise BuildError(sorted(problems))


def _git_bytes(top: str, *args: str, env: dict[str, str] | None = None,
               data: bytes | None = None) -> bytes:
    """``git args`` at the repository's ``top``, its paths literal and its output bytes
    (a path of the tree need not be UTF-8)."""
    try:
        done = subprocess.run(["git", "--literal-pathspecs", *args], cwd=top, input=data,
                              capture_output=True, env=git_env({**os.environ, **(env or {})}),
                              timeout=GIT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        raise BuildError(f"git {args[0]} gave no answer in {GIT_SECONDS} s: nothing was "
                         "published past it; fix what stops git, then publish again"
                         ) from None
    if done.returncode != 0:
        raise BuildError(f"git {args[0]} failed: {os.fsdecode(done.stderr).strip()}")
    return done.stdout


MAX_TREE_PATHS = 5_000_000
"""The most paths the tree of a commit publish reads (the source's, the deploy branch's
tip) may name: git stores a tree once however often it is named, and a few objects
name more paths than memory holds (a listing of a billion, 30 GB, in a minute and a
half)."""


def _git_listed(top: str, *args: str) -> Generator[bytes, None, None]:
    """Each NUL-ended entry ``git args`` lists (``-z``), run as ``_git_bytes`` runs it,
    read as git writes it: a caller that stops early stops git, and no more of the
    listing than one chunk is held at once."""
    with tempfile.TemporaryFile() as errors:
        try:
            git = subprocess.Popen(["git", "--literal-pathspecs", *args], cwd=top,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=errors, env=git_env())
        except OSError as exc:
            if no_new_task(exc):  # git is there and could not start: no failure of git's
                raise
            raise BuildError(f"git {args[0]} failed: {exc.strerror or exc}") from None
        stdout = git.stdout
        assert stdout is not None
        timer = threading.Timer(GIT_SECONDS, git.kill)
        timer.start()
        try:
            rest = b""
            while chunk := stdout.read(1 << 20):
                *entries, rest = (rest + chunk).split(b"\0")
                yield from entries
            code = git.wait()
            if not timer.is_alive():  # it stopped git
                raise BuildError(f"git {args[0]} gave no answer in {GIT_SECONDS} s: nothing "
                                 "was published past it; fix what stops git, then publish "
                                 "again")
            if code != 0:
                errors.seek(0)
                raise BuildError(f"git {args[0]} failed: "
                                 f"{os.fsdecode(errors.read(1 << 16)).strip()}")
        finally:
            timer.cancel()
            git.kill()
            stdout.close()
            git.wait()


def _artifact_directories(top: str, commit: str) -> tuple[set[bytes], set[bytes]]:
    """The directories of ``commit``'s tree that hold a ``manifest.json``, and those of
    them that hold its signature, as paths from the top. The top itself is none: an
    artifact directory is ``<output>/<env>`` below a project (and the empty path is no
    pathspec git takes), so its files go to the branch as the source commit holds them.
    A tree of more than ``MAX_TREE_PATHS`` paths is refused once they are listed."""
    found: dict[bytes, set[bytes]] = {}
    with contextlib.closing(_git_listed(top, "ls-tree", "-r", "-z", "--name-only",
                                        "--full-tree", commit)) as listed:
        for count, name in enumerate(listed, 1):
            if count > MAX_TREE_PATHS:
                raise BuildError(f"the tree of commit {commit} names more than "
                                 f"{MAX_TREE_PATHS} paths (a tree that names its subtrees "
                                 "again and again): publish reads no more of it; remove it "
                                 "from the branch that holds it")
            head, _, last = name.rpartition(b"/")
            if head and last in (MANIFEST.encode(), SIGNATURE.encode()):
                found.setdefault(head, set()).add(last)
    return ({d for d, held in found.items() if MANIFEST.encode() in held},
            {d for d, held in found.items() if held == {MANIFEST.encode(), SIGNATURE.encode()}})


_BLOB_MODES = (b"100644", b"100755")
"""The modes of a file git's tree holds as bytes (not a symlink, not a submodule)."""


class _TreeArtifact(Mapping[str, bytes]):
    """The files of one artifact directory of a commit's tree by name (below the
    directory), each read from git when ``verify_whole`` first asks for it, and only if
    no larger than its kind allows (``size_limit``): a commit of the deploy branch may
    hold anything its writer put there. ``entries``: ``git ls-tree -r -l -z``'s of the
    directory, up to one more than ``MAX_FILES``; ``prefix`` names its files in errors."""

    def __init__(self, top: str, directory: bytes, entries: list[bytes], prefix: str) -> None:
        self._top = top
        self._prefix = prefix
        self._objects: dict[str, tuple[str, int]] = {}
        if len(entries) > MAX_FILES:
            raise too_many_entries(prefix)
        for entry in entries:
            # "<mode> <type> <object> <size>\t<path>", the path from the top.
            head, _, path = entry.partition(b"\t")
            mode, _, object_id, size = head.split(maxsplit=3)
            name = os.fsdecode(path[len(directory) + 1:])
            if mode not in _BLOB_MODES:
                # 120000 a symlink, 160000 a submodule, 100664 a mode only old gits wrote
                raise VerificationError(prefix + name, f"is not a plain file (mode "
                                        f"{mode.decode()}, where git writes 100644 or "
                                        "100755)", "unreadable_file")
            self._objects[name] = (object_id.decode("ascii"), int(size))

    def __getitem__(self, name: str) -> bytes:
        object_id, size = self._objects[name]
        if size > size_limit(name):
            raise VerificationError(self._prefix + name,
                                    f"is larger than {size_limit(name)} bytes",
                                    "unreadable_file")
        return _git_bytes(self._top, "cat-file", "blob", object_id)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._objects))

    def __len__(self) -> int:
        return len(self._objects)


def _keep_signed(root: str, tip: str, source: str, verified: list[str],
                 index: dict[str, str], public_keys: list[Ed25519PublicKey],
                 branch: str) -> None:
    """In the ``index`` of the deploy commit (the source's tree), each artifact directory
    that the branch's ``tip`` holds signed and the source commit unsigned, and that is
    not published now (``verified``, from ``root``), as the tip holds it: CI signs
    without committing the signatures, so the source holds every artifact it does not
    publish unsigned, and the branch would lose the signed one a controller syncs. Each
    is kept only if it verifies with ``public_keys`` for the environment its directory
    names, as a published one does: whoever else writes to the branch is trusted no more
    than a pull request is, and publish would carry what it planted forward."""
    top = _git(root, "rev-parse", "--show-toplevel").stdout.rstrip("\n")
    prefix = os.fsencode(_git(root, "rev-parse", "--show-prefix").stdout.rstrip("\n"))
    published = {prefix + os.fsencode(os.path.normpath(path)) for path in verified}
    held, signed_held = _artifact_directories(top, source)
    _, signed = _artifact_directories(top, tip)
    for directory in sorted((signed & held) - signed_held - published):
        path = os.fsdecode(directory)
        shown = f"{branch}:{path}/"
        with contextlib.closing(_git_listed(top, "ls-tree", "-r", "-l", "-z", "--full-tree",
                                            tip, "--", path)) as listed:
            # One more than any artifact holds is refused: no more is listed.
            entries = list(itertools.islice(listed, MAX_FILES + 1))
        try:
            verify_whole(_TreeArtifact(top, directory, entries, shown), public_keys,
                         environment=os.path.basename(path), prefix=shown)
        except VerificationError as exc:
            raise BuildError([Diagnostic(
                d.file, d.line, d.key, f"{d.message}; the deploy branch holds this artifact "
                "signed and the source commit unsigned, and publish keeps it only if it "
                "verifies with the trusted keys: publish its environment (--env) with its "
                "project's key trusted (--public-key), or remove it from the branch",
                code=d.code) for d in exc.diagnostics]) from None
        _git_bytes(top, "rm", "-r", "-q", "--cached", "--", path, env=index)
        info = b"".join(head.rsplit(b" ", 1)[0].rstrip(b" ") + b"\t" + name + b"\0"
                        for head, _, name in (entry.partition(b"\t") for entry in entries))
        _git_bytes(top, "update-index", "-z", "--index-info", env=index, data=info)


def _no_step_back(root: str, tip: str, branch: str,
                  manifests: Mapping[str, Mapping[str, object]]) -> None:
    """A ``BuildError`` naming each manifest to publish (by its directory, from ``root``)
    whose version is older than the one the branch's ``tip`` holds there, or the same
    version with another config: the pipeline of an older commit run after a newer one's
    (a slow runner, a run again). The controller would sync it, every running service
    refuse it (``rollback_refused``) and a new pod without state serve it, as the runtime
    and ``build --check --since`` judge (``versions.check_succession``). A manifest the
    branch holds that cannot be read as one (none yet, too large, not JSON) is replaced."""
    problems = []
    for directory, after in sorted(manifests.items()):
        path = f"{directory}/{MANIFEST}"
        held = f"{tip}:./{path}"
        size = _git(root, "cat-file", "-s", held, check=False)
        if size.returncode != 0 or not size.stdout.strip().isdigit() \
                or int(size.stdout) > size_limit(MANIFEST):
            continue
        try:
            before = json.loads(_git_bytes(root, "cat-file", "blob", held))
        except (ValueError, RecursionError):
            continue
        if not isinstance(before, dict):
            continue
        try:
            check_succession(before, after, file=path)
        except SuccessionError as exc:
            if exc.reason == "environment_mismatch":
                continue  # not this environment's artifact: replaced
            problems.append(Diagnostic(
                path, None, "version",
                f"version {after.get('version')} after {before.get('version')} on {branch}: "
                f"{exc.reason}; {branch} holds a newer artifact, published from a later "
                "commit (this is an older one's pipeline, run after it): nothing was "
                "published", code=exc.reason))
        except VerificationError:
            continue  # no version there to go back from
    if problems:
        raise BuildError(problems)


def publish(project: Project, envs: Iterable[str], public_keys: list[Ed25519PublicKey],
            branch: str, remote: str | None = None) -> Published:
    """Verify the artifact of each of ``envs``, commit each ``<output>/<env>/`` as it is in
    the work tree onto ``branch`` (its previous tip and HEAD are the parents; the rest
    of the tree as HEAD holds it, but for an artifact the branch holds signed and HEAD
    unsigned: ``_keep_signed``), and push it to ``remote`` when given. Nothing is
    committed unless every environment verifies."""
    root = str(project.root)
    if _git(root, "check-ref-format", "--branch", branch, check=False).returncode != 0:
        raise UsageError(f"{branch!r} is not a valid branch name")
    versions = {}
    verified = []
    manifests: dict[str, Mapping[str, object]] = {}
    for env in envs:
        display = f"{project.output}/{env}"
        verified.append(display)
        result = verify_artifact(real_directory(project.root, display), public_keys,
                                 environment=env, display=display,
                                 project=project_option(project))
        versions[env] = result.version
        manifests[display] = result.manifest
    source = _git(root, "rev-parse", "--verify", "HEAD^{commit}").stdout.strip()
    ref: str | None = f"refs/heads/{branch}"
    if remote is not None:
        # A first publish has no branch to fetch yet: a fetch that fails leaves no tip.
        tracking = f"refs/remotes/{remote}/{branch}"
        if _git(root, "check-ref-format", tracking, check=False).returncode == 0:
            _git(root, "fetch", "--quiet", remote, f"+refs/heads/{branch}:{tracking}",
                 check=False)
            ref = tracking
        else:
            # A URL or a path names no remote-tracking ref: the tip as fetched just now.
            fetched = _git(root, "fetch", "--quiet", remote, f"refs/heads/{branch}",
                           check=False)
            ref = "FETCH_HEAD" if fetched.returncode == 0 else None
    tip = (_git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}",
                check=False).stdout.strip() or None) if ref is not None else None
    if tip is not None:
        _no_step_back(root, tip, branch, manifests)

    with tempfile.TemporaryDirectory(prefix="magcfg-publish-") as tmp:
        index = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
        _git(root, "read-tree", source, env=index)
        if tip is not None:
            _keep_signed(root, tip, source, verified, index, public_keys, branch)
        # -f: a deploy branch carries generated/ even where .gitignore would skip a file.
        # Only what was verified: the rest of the output stays as the source commit
        # holds it (the work tree may hold an environment built since, and not signed).
        _git(root, "add", "-A", "-f", "--", *verified, env=index)
        _as_verified(root, project.output, verified, index)
        tree = _git(root, "write-tree", env=index).stdout.strip()
    if tip is not None and _git(root, "rev-parse", f"{tip}^{{tree}}").stdout.strip() == tree:
        return Published(branch, None, source, versions, pushed=False)
    summary = ", ".join(f"{env} v{v}" for env, v in versions.items())
    message = (f"magcfg publish: signed artifacts of {source[:12]} ({summary})\n\n"
               f"{SKIP_CI}\n")
    parents = [arg for parent in ([tip] if tip else []) + [source] for arg in ("-p", parent)]
    commit = _git(root, "commit-tree", tree, *parents, "-m", message,
                  env={**_IDENTITY, **{k: v for k, v in os.environ.items()
                                       if k.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_"))}}
                  ).stdout.strip()
    _git(root, "update-ref", f"refs/heads/{branch}", commit)
    if remote is not None:
        _git(root, "push", "--quiet", remote, f"{commit}:refs/heads/{branch}")
    return Published(branch, commit, source, versions, pushed=remote is not None)
