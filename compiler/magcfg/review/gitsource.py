"""Layer files as they are in a git commit, read from git objects (never the working tree).

``GitSource`` has the interface of ``load.FileSource`` (``read``, ``list_layer``), so the
``Compiler`` builds an environment at any commit without a checkout: ``magcfg diff
--against REF`` uses it. Paths are relative to the project root, which may be a
sub-directory of the repository.
"""

from __future__ import annotations

import contextlib
import dataclasses
import posixpath
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import BuildError, Diagnostic, UsageError
from ..pipeline.load import LAYER_SUFFIXES
from ..project import Project, load_project

_SYMLINK_MODE = 0o120000
_MAX_LINK_HOPS = 16


def open_repo(root: Path) -> Any:
    """The git repository containing ``root`` (a usage error if there is none)."""
    import git

    try:
        return git.Repo(root, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise UsageError(f"{root} is not inside a git repository") from None


class GitSource:
    """Files of the project at commit ``ref`` of the repository around ``project_root``."""

    def __init__(self, project_root: Path, ref: str, repo: Any | None = None) -> None:
        import git

        self.repo = repo if repo is not None else open_repo(project_root)
        top = Path(self.repo.working_tree_dir).resolve()
        prefix = Path(project_root).resolve().relative_to(top).as_posix()
        self.prefix = "" if prefix == "." else prefix
        self.ref = ref
        # git resolves the name (GitPython's own parser fails on `HEAD:../..`, `@{-1}`,
        # ...); `^{commit}` refuses what names no commit, `--end-of-options` a ref
        # that looks like an option.
        try:
            sha = self.repo.git.rev_parse("--verify", "--quiet", "--end-of-options",
                                          f"{ref}^{{commit}}")
            self.commit = self.repo.commit(sha)
        except (git.GitCommandError, git.BadName, git.BadObject, ValueError):
            raise UsageError(f"unknown git ref {ref!r} (give a commit, branch or tag)") from None
        self.tree = self.commit.tree
        # Each directory's entries by name, by its path in the repository ("" for the
        # root): GitPython parses a tree object again for every lookup by name, and a
        # layer file's path crosses three or four trees of up to hundreds of entries.
        self._entries: dict[str, dict[str, Any]] = {}

    @property
    def hexsha(self) -> str:
        return str(self.commit.hexsha)

    def at_ref(self, diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
        """``diagnostics`` about files of this commit, each naming it (``file@REF``, as
        ``diff`` names its side ``env@REF``): their lines are the commit's, which the
        working-tree file of that name need not have."""
        return [dataclasses.replace(d, file=f"{d.file}@{self.ref}") if d.file
                else dataclasses.replace(d, message=f"{d.message} (at {self.ref})")
                for d in diagnostics]

    @contextlib.contextmanager
    def errors_at_ref(self) -> Iterator[None]:
        """A ``BuildError`` raised in the block is about this commit: ``at_ref``."""
        try:
            yield
        except BuildError as exc:
            raise BuildError(self.at_ref(exc.diagnostics)) from None

    def _full(self, path: str) -> str:
        return posixpath.normpath(posixpath.join(self.prefix, path)) if self.prefix else \
            posixpath.normpath(path)

    def _resolve(self, full: str) -> Any:
        """The blob or tree at ``full``, following symlinks (in any component) that stay
        inside the repository; ``None`` if absent or leading outside."""
        parts = [p for p in full.split("/") if p and p != "."]
        done: list[str] = []
        obj, i, hops = self.tree, 0, 0
        while i < len(parts):
            if obj.type != "tree":
                return None
            child = self._children(obj).get(parts[i])
            if child is None:
                return None
            if child.type == "blob" and child.mode == _SYMLINK_MODE:
                hops += 1
                if hops > _MAX_LINK_HOPS:
                    return None
                target = child.data_stream.read().decode("utf-8", "surrogateescape")
                joined = posixpath.normpath(posixpath.join("/".join(done), target))
                if posixpath.isabs(target) or joined == ".." or joined.startswith("../"):
                    return None
                parts = [p for p in joined.split("/") if p and p != "."] + parts[i + 1:]
                obj, done, i = self.tree, [], 0
                continue
            done.append(parts[i])
            obj = child
            i += 1
        return obj

    def _children(self, tree: Any) -> dict[str, Any]:
        """The entries of ``tree`` by name (parsed once per directory)."""
        found = self._entries.get(tree.path)
        if found is None:
            found = self._entries[tree.path] = {item.name: item for item in tree}
        return found

    def read(self, path: str) -> bytes:
        """The bytes of ``path`` at the commit; ``FileNotFoundError`` if it is absent."""
        obj = self._resolve(self._full(path))
        if obj is None or obj.type != "blob":
            raise FileNotFoundError(2, f"not in {self.ref}", path)
        data: bytes = obj.data_stream.read()
        return data

    def list_layer(self, directory: str, suffixes: tuple[str, ...] = LAYER_SUFFIXES
                   ) -> tuple[list[str], list[Diagnostic]]:
        """Layer files under ``directory`` at the commit, ordered as ``FileSource`` orders
        them; symlinks leading outside the repository are reported, not followed."""
        files: list[str] = []
        problems: list[Diagnostic] = []
        base = self._resolve(self._full(directory))
        if base is None or base.type != "tree":
            return files, problems
        stack = [(base, directory.strip("/"))]
        while stack:
            tree, rel = stack.pop()
            for item in self._children(tree).values():
                name = item.name
                if name.startswith("."):
                    continue
                child = f"{rel}/{name}" if rel else name
                target = item
                if item.type == "blob" and item.mode == _SYMLINK_MODE:
                    target = self._resolve(self._full(child))
                    if target is None:
                        problems.append(Diagnostic(child, None, None,
                                                   "symlink leads outside the repository",
                                                   code="symlink"))
                        continue
                if target.type == "tree":
                    stack.append((target, child))
                elif name.endswith(suffixes):
                    files.append(child)
        files.sort(key=lambda p: p.encode("utf-8"))
        return files, problems


def project_at(project: Project, source: GitSource) -> Project:
    """The project file as it is in ``source``'s commit, rooted at the working project's
    root (so layer paths resolve the same way). The working file is used when the commit
    has none under that name."""
    try:
        raw = source.read(project.file)
    except FileNotFoundError:
        return project
    if raw == project.raw:
        return project
    with tempfile.TemporaryDirectory(prefix="magcfg-ref-") as tmp:
        copy = Path(tmp) / project.file
        copy.write_bytes(raw)
        loaded = load_project(copy)
    return dataclasses.replace(loaded, root=project.root)
