"""MAG003's advice: the command it gives runs as it stands in the lint root."""

from __future__ import annotations

import re
import subprocess

from magcfg.lint import lint

from .conftest import MakeRepo, git


def test_the_advised_git_rm_untracks_that_file_alone(make_repo: MakeRepo) -> None:
    """A tracked ``.env`` whose directory a pull request names: with a space, a command
    substitution or a leading dash, the advised ``git rm --cached`` run verbatim by a
    shell untracks that file and nothing else, and runs nothing the name holds (it
    was unquoted: ``git rm --cached my app/.env`` untracked ``my`` and ``app/.env``)."""
    dirs = ["my app", "$(touch PWNED)", "-n x", "it's"]
    repo = make_repo({**{f"{d}/.env": "X=1\n" for d in dirs},
                      "my": "decoy\n", "app/.env.example": "X=\n", "app/.env": "X=1\n"})
    fixes = {f.file: f.fix for f in lint(repo.root).findings if f.rule == "MAG003"}
    for directory in dirs:
        advised = re.search(r"`(git rm --cached [^`]*)`", fixes[f"{directory}/.env"])
        assert advised is not None, fixes[f"{directory}/.env"]
        before = set(git(repo.root, "ls-files", "-z").split("\0"))
        subprocess.run(["sh", "-c", advised.group(1)], cwd=repo.root, check=True,
                       capture_output=True)
        after = set(git(repo.root, "ls-files", "-z").split("\0"))
        assert before - after == {f"{directory}/.env"}, advised.group(1)
        assert not (repo.root / "PWNED").exists()
