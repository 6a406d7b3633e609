"""Commit the run back to the repository and push it (docs/commit-back.md).

One commit per run holding exactly the run's files. It is built in a
temporary index started from a copy of the real one (so git's stat cache
spares it from re-reading every file under `git.paths`), with whatever the
user has staged set back to HEAD; the user's staged, unstaged and untracked
work is not touched. A push rejected because the branch moved is replayed
onto the remote branch and retried; any other rejection fails at once;
nothing is ever force-pushed.

git runs as plain argument lists, each command in its own session (a cancel
that signals our process group must not cut a commit in half), with literal
pathspecs, no terminal prompt and a timeout on network commands.
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

from gitcron import config, lock, records, runid
from gitcron.codes import FatalError
from gitcron.config import GitSettings, parse_timestamp
from gitcron.logs import Masker

BOT_NAME = "github-actions[bot]"
BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"
NETWORK_TIMEOUT_SECONDS = 120.0
BACKOFF_SECONDS = (1.0, 2.0, 4.0, 8.0)
TEMP_INDEX_PREFIX = "pipeline-index-"
# Written before the real index and HEAD change, removed after: what `repair` finishes.
JOURNAL = "pipeline-commit.json"
# The runner's commits not yet pushed (one sha a line), written before HEAD moves to
# one: the next run pushes them along; any other commit not on the upstream is the
# user's, and stops the run before it starts.
OWN_COMMITS = "gitcron-unpushed"
ZERO = "0" * 40
# What git prints when the server refused the credentials, or when it had none to give.
AUTH_FAILED = ("could not read Username", "Authentication failed", "The requested URL returned "
               "error: 401", "The requested URL returned error: 403", "Permission denied",
               "Write access to repository not granted")
# `git push --porcelain` reasons that mean "the branch moved meanwhile": a race, worth a
# retry. A hook that declined ("pre-receive hook declined", GitHub's "protected branch
# hook declined") or a missing permission is not.
MOVED = ("fetch first", "non-fast-forward", "stale info", "cannot lock ref",
         "failed to update ref", "incorrect old value")
Redact = Callable[[str], str]


class PushError(Exception):
    """Committing or pushing failed; the message is redacted and says what to do."""


@dataclass(frozen=True)
class Request:
    """What to commit: paths are absolute, or relative to `root` for `extra`."""

    root: Path  # the config's folder
    log: Path
    record: Path
    config: Path | None  # None: a module left it broken; it is not committed
    extra: tuple[str, ...]  # git.paths
    settings: GitSettings
    run_id: str
    status: str
    env: Mapping[str, str]
    # With git.commit "changes": no commit unless something besides the log, the
    # record and config.json changed under git.paths (the caller checks the modules).
    only_if_changed: bool = False
    # The start of a line in the log's own format (logs.prefix), for the line that
    # ends the log when the run is renamed.
    note_prefix: bytes = b""
    # The run's folder (`<log_dir>/runs/<run id>`), when it is committed with the run.
    run_dir: Path | None = None
    # A second paragraph for the commit message: why a commit was made at all.
    note: str | None = None
    # `<log_dir>/badge.json`, among `extra`: when a concurrent run changed it too,
    # the run pushing now (the last to finish) writes it.
    badge: Path | None = None
    # The commit's diff stats, for its message (set once the run's commit is made).
    stats: str | None = None
    # Where the run's files are: the log folder and its layout (gitcron/runid.py).
    # Without a log_dir, the log's own folder, flat.
    log_dir: Path | None = None
    layout: runid.Layout = "flat"


@dataclass(frozen=True)
class Pushed:
    commit: str
    branch: str
    target: str
    attempts: int
    renamed_to: str | None = None  # the run id, when a concurrent run had taken ours
    local_updated: bool = True
    advice: str | None = None  # what to run when the checkout was left behind
    # Whether anything changed beyond the run's own files and last_run_date (the
    # step output `changed`), and the commit's diff stats.
    changed: bool = True
    stats: str = ""


class GitError(Exception):
    def __init__(self, args: Sequence[str], status: int | None, stdout: str, stderr: str):
        super().__init__(f"git {' '.join(args[:2])} exited with {status}")
        self.status, self.stdout, self.stderr = status, stdout, stderr


@dataclass(frozen=True)
class Where:
    top: Path  # the work tree
    git_dir: Path


@dataclass
class _Git:
    """Runs git as argument lists, with a fixed environment; redacts every error."""

    where: Where
    env: dict[str, str]
    redact: Redact
    auth: dict[str, str] = field(default_factory=dict)

    def __call__(self, *args: str, index: str | None = None, network: bool = False,
                 extra_env: Mapping[str, str] | None = None, stdin: bytes | None = None) -> str:
        out = self.raw(*args, index=index, network=network, extra_env=extra_env, stdin=stdin)
        return out.decode("utf-8", "surrogateescape").removesuffix("\n")

    def raw(self, *args: str, index: str | None = None, network: bool = False,
            extra_env: Mapping[str, str] | None = None, stdin: bytes | None = None) -> bytes:
        env = dict(self.env, **(extra_env or {}))
        if index is not None:
            env["GIT_INDEX_FILE"] = index
        if network:
            env.update(self.auth)
        # Local commands keep the run's lock until they end, even if we are killed;
        # network ones do not (a hung push must not lock the checkout for good).
        fds = () if network else lock.held_fds()
        with subprocess.Popen(
            ["git", *args], cwd=self.where.top, env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            pass_fds=fds,
        ) as proc:
            try:
                out, err = proc.communicate(stdin, NETWORK_TIMEOUT_SECONDS if network else None)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # git and its helpers, in their session
                proc.communicate()
                raise GitError(args, None, "", f"fatal: no answer within "
                               f"{NETWORK_TIMEOUT_SECONDS:g} s") from None
        if proc.returncode:
            raise GitError(args, proc.returncode, out.decode(errors="replace"),
                           err.decode(errors="replace"))
        return out

    def error(self, exc: GitError) -> str:
        """git's own last words, redacted."""
        lines = [ln.strip() for ln in self.redact(exc.stderr).splitlines() if ln.strip()]
        useful = [ln for ln in lines if ln.startswith(("fatal:", "error:", "remote:", "!"))]
        return " / ".join((useful or lines or [f"git exited with {exc.status}"])[-2:])


# ---- where, and whether commit-back can work (checked before any module runs)

def locate(root: Path) -> Where:
    git_dir = lock.find_git_dir(root)
    if git_dir is None:
        if (root / "HEAD").is_file() and (root / "objects").is_dir():
            raise PushError(f"{root}: the repository is bare: there is no work tree to commit")
        raise PushError(f"{root} is not in a git repository (run `git init`, or use --no-push)")
    top = root.absolute()
    while not (top / ".git").exists():
        top = top.parent
    return Where(top.resolve(), git_dir.resolve())


def current_branch(where: Where, settings: GitSettings) -> str:
    if settings.branch:
        return settings.branch
    try:
        head = (where.git_dir / "HEAD").read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise PushError(f"{where.git_dir}/HEAD: cannot read it: {exc.strerror}") from None
    if not head.startswith("ref: refs/heads/"):
        raise PushError('HEAD is detached and git.branch is not set (check out a branch, or '
                        'set "git": {"branch": "main"} in the config)')
    return head.removeprefix("ref: refs/heads/")


def check(root: Path, settings: GitSettings, env: Mapping[str, str], log_dir: Path) -> str:
    """Can the run be committed and pushed? FatalError naming the fault, else where
    it will go: "push to origin main"."""
    try:
        where = locate(root)
        branch = current_branch(where, settings)
    except PushError as exc:
        raise FatalError(f"commit-back: {exc}") from None
    target, _, _ = _target(settings, env)
    if target == settings.remote:
        _check_remote(where, settings.remote, env)
    _check_inside(where, "log_dir", log_dir)
    for name in settings.paths:
        _check_inside(where, f"git.paths entry {name!r}", root / name)
    _check_secrets_stay(where, root, settings.paths, env)
    _check_local_commits(_Git(where, _base_env(env), str), settings.remote, branch)
    return f"push to {target} {branch}"


def _check_local_commits(git: _Git, remote: str, branch: str) -> None:
    """Commits on HEAD that the upstream (as of the last fetch) does not have, and
    that are not the runner's own: pushing them along, or replaying the run without
    them, would publish or drop the user's work."""
    upstream = _upstream(git, remote, branch)
    if upstream is None or _head(git) is None:
        return
    listed = git("rev-list", f"{upstream}..HEAD").split()
    own = _own_commits(git.where)
    theirs = [sha for sha in listed if sha not in own]
    if theirs:
        names = ", ".join(sha[:7] for sha in theirs[:5]) + (", ..." if len(theirs) > 5 else "")
        count = f"{len(theirs)} local commit{'s' if len(theirs) > 1 else ''}"
        raise FatalError(f"commit-back: {count} not on {remote}/{branch} ({names}): push or "
                         "drop them first, or run with --no-push")


def _upstream(git: _Git, remote: str, branch: str) -> str | None:
    """The remote-tracking ref of the branch, if the remote is a name and has one."""
    if "/" in remote or ":" in remote:
        return None
    ref = f"refs/remotes/{remote}/{branch}"
    return ref if _verify(git, ref) else None


def _own_commits(where: Where) -> set[str]:
    try:
        return set((where.git_dir / OWN_COMMITS).read_text(encoding="ascii").split())
    except (OSError, ValueError):
        return set()


def _remember_own(where: Where, commit: str) -> None:
    shas = sorted(_own_commits(where) | {commit})
    tmp = where.git_dir / f"{OWN_COMMITS}.tmp"
    tmp.write_text("".join(f"{sha}\n" for sha in shas), encoding="ascii")
    os.replace(tmp, where.git_dir / OWN_COMMITS)


def _start_point(git: _Git, parent: str | None) -> str | None:
    """The commit the run started from: HEAD before it, below the runner's own
    commits an earlier run could not push (they go out with this one)."""
    own = _own_commits(git.where)
    start = parent
    while start is not None and start in own:
        start = _verify(git, f"{start}^1")
    return start


def _check_secrets_stay(where: Where, root: Path, paths: tuple[str, ...],
                        env: Mapping[str, str]) -> None:
    """`.env` holds the local secrets: a git.paths entry that holds it must not commit it."""
    dotenv = (root / ".env").absolute()
    if not dotenv.is_file():
        return
    covering = [name for name in paths
                if dotenv == (root / name).absolute() or (root / name).absolute() in dotenv.parents]
    if not covering:
        return
    git = _Git(where, _base_env(env), str)
    try:  # check-ignore refuses literal pathspecs; a file name has no magic here
        git("check-ignore", "-q", "--", _rel(dotenv, where.top),
            extra_env={"GIT_LITERAL_PATHSPECS": "0"})
    except GitError:  # not ignored (or tracked): `git add` of the entry would take it
        raise FatalError(f"commit-back: git.paths entry {covering[0]!r} would commit .env, "
                         "which holds secrets: add `.env` to .gitignore") from None


# GitHub disables the schedule of a public repository after 60 days without
# activity (docs.github.com, "Disabling and enabling a workflow"); 50 leaves ten
# days to notice, or for a keep-alive commit to land.
KEEP_ALIVE_DAYS = 50


def newest_commit(root: Path) -> tuple[str, float] | None:
    """The branch's newest commit (HEAD) and its committer time, or None outside a
    repository or before the first commit."""
    if lock.find_git_dir(root) is None:
        return None
    try:
        where = locate(root)
        out = _Git(where, _base_env({}), str)("log", "-1", "--format=%H %ct", "HEAD")
        sha, _, stamp = out.partition(" ")
        return sha, float(stamp)
    except (PushError, GitError, ValueError):
        return None


def uncommitted(root: Path, path: Path) -> bool:
    """Whether `path` differs from HEAD's (staged or not)."""
    where = locate(root)
    git = _Git(where, _base_env({}), str)
    try:
        git("diff", "--quiet", "HEAD", "--", _rel(path, where.top))
    except GitError as exc:
        return exc.status == 1  # 1: it differs; anything else (no HEAD yet): no claim
    return False


def _check_remote(where: Where, remote: str, env: Mapping[str, str]) -> None:
    if "/" in remote or ":" in remote:
        return  # a URL or a path, not a remote's name
    git = _Git(where, _base_env(env), str)
    if remote not in git("remote").split("\n"):
        raise FatalError(f"commit-back: git.remote: {where.top} has no remote {remote!r} (add "
                         f"it with `git remote add {remote} URL`, or set GITHUB_REPOSITORY and "
                         "GITHUB_TOKEN)")


def _check_inside(where: Where, what: str, path: Path) -> None:
    real = path.resolve()
    if real == where.git_dir or where.git_dir in real.parents:  # a symlink into .git
        raise FatalError(f"commit-back: {what}: {path} is inside {where.git_dir}, which is "
                         "git's own folder: it cannot be committed")
    try:
        real.relative_to(where.top)
    except ValueError:
        raise FatalError(f"commit-back: {what}: {path} is outside the work tree {where.top}: "
                         "it cannot be committed") from None


# ---- crash safety

def repair(root: Path, since: float | None = None) -> list[str]:
    """Finish what a killed run left (call it holding the run lock, before the run).

    A journal means a commit-back stopped between updating the real index and
    HEAD: our paths' index entries are set to HEAD's, so that nothing shows as a
    staged addition or deletion. Temporary indexes older than `since` go.
    Returns what was done, one line each.
    """
    git_dir = lock.find_git_dir(root)
    if git_dir is None:
        return []
    done = _remove_stale_indexes(git_dir, time.time() if since is None else since)
    journal = git_dir / JOURNAL
    if journal.exists():
        done.append(_finish_journal(Where(_top_of(root), git_dir), journal))
    return done


def _top_of(root: Path) -> Path:
    return locate(root).top


def _remove_stale_indexes(git_dir: Path, since: float) -> list[str]:
    done = []
    for path in git_dir.glob(f"{TEMP_INDEX_PREFIX}*"):
        try:
            if path.stat().st_mtime < since:
                path.unlink()
                done.append(f"removed a temporary index a killed run left: {path.name}")
        except FileNotFoundError:
            continue
    return done


def _finish_journal(where: Where, journal: Path) -> str:
    try:
        paths = json.loads(journal.read_text(encoding="utf-8"))["paths"]
    except (OSError, ValueError, KeyError, TypeError):
        paths = None
    if paths:
        git = _Git(where, _base_env(os.environ), str)
        try:
            git("reset", "-q", "--no-refresh", "HEAD", "--", *paths)
        except GitError as exc:
            return f"could not repair the index after a killed run: {git.error(exc)}"
    journal.unlink(missing_ok=True)
    return "a killed run had left the index behind HEAD: its paths were set to HEAD"


def _write_journal(where: Where, commit: str, paths: list[str]) -> None:
    tmp = where.git_dir / f"{JOURNAL}.tmp"
    tmp.write_text(json.dumps({"commit": commit, "paths": paths}), encoding="utf-8")
    os.replace(tmp, where.git_dir / JOURNAL)


# ---- commit

def commit_and_push(req: Request, redact: Masker) -> Pushed | None:
    """Commit the run's files on top of HEAD and push them; PushError on any failure.

    None: `only_if_changed` and nothing worth a commit changed.
    """
    where = locate(req.root)
    git = _Git(where, _base_env(req.env), redact)
    branch = current_branch(where, req.settings)
    target, git.auth, secrets = _target(req.settings, req.env)
    git.redact = redact.extended(secrets)  # the encoded header too, should git ever print it
    start = _start_point(git, _head(git))
    made = _commit(git, req)
    if made is None:
        return None
    ours, _, stats, changed = made
    pushed = _push_with_retries(git, replace(req, stats=stats), ours, start, branch, target)
    _after_push(git, req.settings.remote, target, branch, pushed.commit)
    return replace(pushed, changed=changed, stats=stats)


def _after_push(git: _Git, remote: str, target: str, branch: str, pushed: str) -> None:
    """Once the checkout is at what was pushed, no commit of the runner's is left
    unpushed. A push to a URL (GITHUB_TOKEN) moves the remote-tracking ref the way
    `git push` does for a named remote, so that the next run's check of local
    commits compares with what is there."""
    tracking = _upstream(git, remote, branch) if target != remote else None
    if tracking is not None:
        git("update-ref", "-m", "pipeline: pushed", tracking, pushed)
    if _head(git) == pushed:
        (git.where.git_dir / OWN_COMMITS).unlink(missing_ok=True)


def _base_env(env: Mapping[str, str]) -> dict[str, str]:
    # Never wait for a password; paths are paths, never pathspec magic (`:!x`).
    return dict(env, GIT_TERMINAL_PROMPT="0", GIT_LITERAL_PATHSPECS="1")


def _target(settings: GitSettings, env: Mapping[str, str]
            ) -> tuple[str, dict[str, str], list[str]]:
    """Where to push, the auth configuration for that one command, and secrets to redact.

    With GITHUB_TOKEN and GITHUB_REPOSITORY: the server's URL, with the token as an
    HTTP authorization header given through GIT_CONFIG_* variables: never in a
    URL, never on a command line, never in .git/config.
    """
    token, repository = env.get("GITHUB_TOKEN"), env.get("GITHUB_REPOSITORY")
    if not (token and repository):
        return settings.remote, {}, []
    server = (env.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/")
    encoded = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    key = f"http.{server}/.extraheader"
    auth = {
        "GIT_CONFIG_COUNT": "2",
        # An empty value first clears a header actions/checkout may have stored.
        "GIT_CONFIG_KEY_0": key, "GIT_CONFIG_VALUE_0": "",
        "GIT_CONFIG_KEY_1": key, "GIT_CONFIG_VALUE_1": f"AUTHORIZATION: basic {encoded}",
    }
    return f"{server}/{repository}.git", auth, [encoded, token]


def _identity(settings: GitSettings) -> dict[str, str]:
    """git.author_*, as far as it is set (the rest comes from git's configuration)."""
    name, email = settings.author_name, settings.author_email
    return {k: str(v) for k, v in (
        ("GIT_AUTHOR_NAME", name), ("GIT_COMMITTER_NAME", name),
        ("GIT_AUTHOR_EMAIL", email), ("GIT_COMMITTER_EMAIL", email)) if v}


BOT_IDENTITY = {"GIT_AUTHOR_NAME": BOT_NAME, "GIT_COMMITTER_NAME": BOT_NAME,
                "GIT_AUTHOR_EMAIL": BOT_EMAIL, "GIT_COMMITTER_EMAIL": BOT_EMAIL}


def _rel(path: Path, top: Path, follow: bool = True) -> str:
    """`path` relative to the work tree; with follow=False a symlink is itself (as
    `runs/latest` is committed), not its target."""
    try:
        real = path.resolve() if follow else path.parent.resolve() / path.name
        return real.relative_to(top).as_posix()
    except ValueError:
        raise PushError(f"{path} is outside the repository {top}: it cannot be committed") from None


def _head(git: _Git) -> str | None:
    return _verify(git, "HEAD")  # None: a repository with no commit yet


def _verify(git: _Git, rev: str) -> str | None:
    try:
        return git("rev-parse", "-q", "--verify", f"{rev}^{{commit}}")
    except GitError:
        return None


# Every blob in a temporary index is known to exist: it came from a commit's tree,
# from `git add` or from `hash-object -w`. Without the check, write-tree does not
# look each one up again: 20,000 lookups were 60% of its time with 10,000 runs.
WRITE_TREE = ("write-tree", "--missing-ok")


@contextmanager
def _temporary_index(git_dir: Path) -> Iterator[str]:
    # A fresh name (git creates the file: an empty file is not a valid index).
    path = str(git_dir / f"{TEMP_INDEX_PREFIX}{os.getpid()}-{os.urandom(6).hex()}")
    try:
        yield path
    finally:
        Path(path).unlink(missing_ok=True)
        Path(path + ".lock").unlink(missing_ok=True)


def _commit(git: _Git, req: Request) -> tuple[str, str | None, str, bool] | None:
    """The run's commit on top of HEAD, its parent, its diff stats and whether it
    holds more than the run's own files; HEAD moves to it, the rest stays as it was.
    None when `only_if_changed` and nothing worth it changed. PushError, before
    anything moved, when a file is too large for the remote to take."""
    top = git.where.top
    parent = _head(git)
    run_files = [_rel(p, top) for p in (req.log, req.record, req.config) if p is not None]
    try:
        extra = _extra_paths(git, req)
        with _temporary_index(git.where.git_dir) as index:
            _start_index(git, index, parent)
            _stage(git, run_files, extra, index)
            changed = _changed(git, index, parent)
            _refuse_links_out(git, index, parent)
            if req.only_if_changed and parent and set(changed) <= set(run_files):
                return None
            _check_sizes(git, index, changed, req.settings.max_file_mb)
            stats = _diff_stats(git, index, parent)
            tree = git(*WRITE_TREE, index=index)
        commit = _commit_tree(git, replace(req, stats=stats), tree, parent)
        beyond = _beyond_own_files(git, req, changed, parent)
        _move_head(git, req.run_id, commit, parent, changed)
    except GitError as exc:
        raise PushError(f"committing the run failed: {git.error(exc)}") from None
    except OSError as exc:  # a full disk: one line, as git's own failures get
        where = f" ({exc.filename})" if exc.filename else ""
        raise PushError(f"committing the run failed: {exc.strerror or exc}{where}: nothing "
                        "was committed; the run's files are on disk") from None
    return commit, parent, stats, beyond


MB = 1024 * 1024


def _check_sizes(git: _Git, index: str, changed: list[str], max_mb: float) -> None:
    """Files at or above git.max_file_mb, as git would store them (an LFS pointer,
    not the file it stands for), stop the commit: GitHub refuses a file over 100
    MB, and only after the upload. Only files that large on disk are looked up."""
    top, limit = git.where.top, max_mb * MB
    large = [path for path in changed if _size_on_disk(top / path) >= limit]
    if not large:
        return
    listed = git.raw("ls-files", "-s", "-z", "--", *large, index=index).split(b"\0")
    blobs = {line.split(b"\t", 1)[1]: line.split(b" ")[1] for line in listed if b"\t" in line}
    checked = git.raw("cat-file", "--batch-check=%(objectsize)",
                      stdin=b"".join(blob + b"\n" for blob in blobs.values())).split()
    too_big = [(path.decode("utf-8", "surrogateescape"), int(size))
               for path, size in zip(blobs, checked, strict=True) if int(size) >= limit]
    if too_big:
        named = ", ".join(f"{path} ({size / MB:.1f} MB)" for path, size in too_big)
        raise PushError(f"commit-back stopped before any push: {len(too_big)} file"
                        f"{'s' if len(too_big) > 1 else ''} at or above git.max_file_mb "
                        f"({max_mb:g} MB), which the remote may refuse: {named}; track "
                        "large files with Git LFS, keep them out of git.paths, or raise "
                        "git.max_file_mb")


def _size_on_disk(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:
        return 0  # deleted: nothing to upload


# Files larger than this are diffed as binary for the stats (git's own knob): a
# line diff of a large data file would cost more than the rest of the commit.
STATS_THRESHOLD = "1m"


def _diff_stats(git: _Git, index: str, parent: str | None) -> str:
    """`3 files changed, 120 insertions(+), 4 deletions(-)`, as git says it; files
    diffed as binary (or over STATS_THRESHOLD) are counted apart."""
    base = parent or git("hash-object", "-t", "tree", os.devnull)
    raw = git.raw("-c", f"core.bigFileThreshold={STATS_THRESHOLD}", "diff-index", "--cached",
                  "--numstat", "-z", "--no-renames", base, index=index)
    files = added = deleted = binary = 0
    for entry in raw.split(b"\0"):
        fields = entry.split(b"\t")
        if len(fields) < 2:
            continue
        files += 1
        if fields[0] == b"-":
            binary += 1
        else:
            added, deleted = added + int(fields[0]), deleted + int(fields[1])
    text = (f"{files} file{'s' if files != 1 else ''} changed, {added} insertion"
            f"{'s' if added != 1 else ''}(+), {deleted} deletion{'s' if deleted != 1 else ''}(-)")
    return text + (f", {binary} binary" if binary else "")


def _beyond_own_files(git: _Git, req: Request, changed: list[str], parent: str | None) -> bool:
    """Whether anything changed besides the run's log, record, run folder,
    `runs/latest`, the badge and the config's last_run_date (the step output
    `changed`: what Flat's delta_bytes tells)."""
    top = git.where.top
    own = {_rel(p, top) for p in (req.log, req.record) if p is not None}
    if req.badge is not None:
        own.add(_rel(req.badge, top))
    folder = _run_folder(req, top)
    config_rel = _rel(req.config, top) if req.config is not None else None
    for path in changed:
        if path in own or (folder is not None and folder.holds(path)):
            continue
        if path == config_rel and not _config_changed(git, path, parent):
            continue
        return True
    return False


def _config_changed(git: _Git, path: str, parent: str | None) -> bool:
    """Whether the config changed in more than last_run_date."""
    kind = config.kind_of(path)
    try:
        old = config.parse(_show(git, parent, path).decode("utf-8"), path, kind) if parent else {}
        new = config.parse((git.where.top / path).read_text(encoding="utf-8"), path, kind)
    except (GitError, OSError, UnicodeDecodeError, FatalError):
        return True
    old.pop("last_run_date", None)
    new.pop("last_run_date", None)
    return old != new


def _extra_paths(git: _Git, req: Request) -> list[str]:
    """git.paths that exist now or are tracked (so that deletions are committed too)."""
    top = git.where.top
    rels = [_rel(req.root / name, top, follow=False) for name in req.extra]
    missing = [rel for rel in rels if not os.path.lexists(top / rel)]
    tracked = set()
    if missing:
        listed = git.raw("ls-files", "-z", "--", *missing).decode(errors="surrogateescape")
        tracked = {rel for rel in missing if any(
            name == rel or name.startswith(rel + "/") for name in listed.split("\0"))}
    return [rel for rel in rels if rel not in missing or rel in tracked]


def _start_index(git: _Git, index: str, parent: str | None) -> None:
    """The temporary index: HEAD's tree, with the stat data of the real index.

    A copy of the real index keeps git's stat cache, so that `git add` opens only
    files whose stat changed (a tree read with `read-tree` has no stat data: every
    file under git.paths would be read and hashed again). The copy keeps the real
    index's mtime too, so that git's check for racily clean entries sees what it
    would see there. What the user staged is then set back to HEAD.
    """
    real = git.where.git_dir / "index"
    if parent is None or not real.exists():
        git("read-tree", parent or "--empty", index=index)
        return
    shutil.copy2(real, index)
    staged = git.raw("diff-index", "--cached", "-z", "--no-renames", parent, index=index)
    lines = _back_to_head(staged)
    if lines:
        git("update-index", "-z", "--index-info", index=index, stdin=lines)


def _back_to_head(diff: bytes) -> bytes:
    """`update-index --index-info` input that sets each path of a `diff-index -z`
    back to its old side: remove every stage, then add HEAD's entry if it has one."""
    fields = diff.split(b"\0")
    out = []
    for meta, path in zip(fields[0::2], fields[1::2], strict=False):
        if not meta.startswith(b":"):
            continue
        old_mode, _, old_blob = meta[1:].split(b" ")[:3]
        out.append(b"0 " + ZERO.encode() + b"\t" + path + b"\0")
        if old_mode != b"000000":
            out.append(old_mode + b" " + old_blob + b"\t" + path + b"\0")
    return b"".join(out)


def _stage(git: _Git, run_files: list[str], extra: list[str], index: str) -> None:
    try:
        git("add", "--all", "--", *extra, *run_files, index=index)
    except GitError as exc:
        if "ignored by one of your .gitignore files" not in exc.stderr:
            raise
        git("add", "--force", "--", *run_files, index=index)  # .gitignore names them


def _changed(git: _Git, index: str, parent: str | None) -> list[str]:
    """Paths whose entry in the temporary index differs from the parent's tree."""
    if parent is None:
        names = git.raw("ls-files", "-z", index=index)
    else:
        names = git.raw("diff-index", "--cached", "-z", "--name-only", "--no-renames", parent,
                        index=index)
    return [name for name in names.decode("utf-8", "surrogateescape").split("\0") if name]


def _refuse_links_out(git: _Git, index: str, parent: str | None) -> None:
    """A symlink whose target lies outside the repository is never committed: a
    checkout of the commit (an artifact upload) would follow it out."""
    if parent is None:
        raw = git.raw("ls-files", "-s", "-z", index=index)
        links = [entry.split(b"\t", 1)[1] for entry in raw.split(b"\0")
                 if entry.startswith(b"120000 ")]
    else:
        fields = git.raw("diff-index", "--cached", "-z", "--no-renames", parent,
                         index=index).split(b"\0")
        links = [path for meta, path in zip(fields[0::2], fields[1::2], strict=False)
                 if meta.startswith(b":") and meta.split(b" ")[1] == b"120000"]
    top = git.where.top
    for name in links:
        path = name.decode("utf-8", "surrogateescape")
        real = Path(os.path.realpath(top / path))
        if real != top and top not in real.parents:
            raise PushError(f"{path} is a symlink to {real}, outside the repository: the "
                            "runner never commits one; nothing was committed")


def _move_head(git: _Git, run_id: str, commit: str, parent: str | None,
               changed: list[str]) -> None:
    """The real index learns the commit's changes, then HEAD moves to the commit.

    In that order, a kill in between leaves the run's files staged (never a staged
    deletion), and the journal lets the next run's `repair` set them to HEAD.
    Only the changed paths' entries are written (from the work tree, with their
    stat data): nothing else in the real index changes, and nothing is walked.
    """
    _remember_own(git.where, commit)
    _write_journal(git.where, commit, changed)
    names = "".join(f"{name}\0" for name in changed).encode("utf-8", "surrogateescape")
    try:
        git("update-index", "--add", "--remove", "-z", "--stdin", stdin=names)
        git("update-ref", "-m", f"pipeline: run {run_id}", "HEAD", commit, parent or ZERO)
    except GitError:
        if changed:
            git("reset", "-q", "--no-refresh", "HEAD", "--", *changed)  # back as it was
        raise
    finally:
        (git.where.git_dir / JOURNAL).unlink(missing_ok=True)


def _commit_tree(git: _Git, req: Request, tree: str, parent: str | None,
                 run_id: str | None = None) -> str:
    """git.author_*, else the configured identity, else the Actions bot.

    user.useConfigOnly: git must not make up an identity from the host's name; it
    fails instead, and the bot signs.
    """
    message = req.settings.commit_message.format(run_id=run_id or req.run_id,
                                                 status=req.status)
    args = ["-c", "user.useConfigOnly=true", "commit-tree", tree,
            *(["-p", parent] if parent else []), "-m", message,
            *(["-m", req.note] if req.note else []), *(["-m", req.stats] if req.stats else [])]
    identity = _identity(req.settings)
    try:
        return git(*args, extra_env=identity)
    except GitError as exc:
        if "ident" not in exc.stderr.lower() and "tell me who you are" not in exc.stderr:
            raise
        return git(*args, extra_env=dict(BOT_IDENTITY, **identity))


# ---- push

def _push_with_retries(git: _Git, req: Request, ours: str, base: str | None, branch: str,
                       target: str) -> Pushed:
    commit, renamed = ours, None
    for attempt in range(1, req.settings.push_retries + 2):
        if not _push(git, commit, branch, target):
            return _pushed(git, ours, commit, branch, target, attempt, renamed, base)
        if attempt > req.settings.push_retries:
            break
        time.sleep(_backoff(attempt))
        remote = _fetch(git, target, branch)
        _check_still_there(git, base, ours, remote, target, branch)
        commit, renamed = _replay(git, req, base, ours, remote)
    raise PushError(
        f"push to {target} ({branch}) still rejected after {req.settings.push_retries} retries: "
        f"the branch keeps moving; the run's commit {ours[:7]} is on the local branch: "
        f"{_catch_up_advice(target, branch)}")


def _check_still_there(git: _Git, start: str | None, ours: str, remote: str, target: str,
                       branch: str) -> None:
    """A remote branch rewritten under the run (a force-push) is not replayed onto:
    what the run started from would be dropped, with the files it holds."""
    if start is None:
        return
    try:
        git("merge-base", "--is-ancestor", start, remote)
    except GitError as exc:
        if exc.status != 1:  # 1: not an ancestor; anything else says nothing of it
            return
        raise PushError(
            f"{target} ({branch}) no longer holds {start[:7]}, the commit this run started "
            f"from (it was force-pushed): nothing was pushed, and the run's commit {ours[:7]} "
            f"is on the local branch; compare with `git log --oneline --graph HEAD "
            f"FETCH_HEAD`, merge or rebase by hand, then push") from None


def _catch_up_advice(target: str, branch: str) -> str:
    # In a rebase "ours" is the remote's side: a conflict on config.json (both runs
    # set last_run_date) keeps the remote's file, the rest of the run lands as is.
    return f"push it with `git pull --rebase -X ours {target} {branch} && git push {target} " \
           f"HEAD:{branch}`"


def _pushed(git: _Git, ours: str, commit: str, branch: str, target: str, attempt: int,
            renamed: str | None, base: str | None) -> Pushed:
    if commit == ours:
        return Pushed(commit, branch, target, attempt, renamed)
    if _update_checkout(git, ours, commit):
        return Pushed(commit, branch, target, attempt, renamed)
    advice = (f"the checkout was left at the run's local commit {ours[:7]}, which the pushed "
              f"{commit[:7]} replaces: commit or stash your edits, then "
              f"`git reset --keep {commit[:12]}`")
    return Pushed(commit, branch, target, attempt, renamed, local_updated=False, advice=advice)


def _backoff(attempt: int) -> float:
    """Exponential with jitter, so that racing runs do not collide again in step."""
    import random  # only a rejected push needs it

    return BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS)) - 1] * random.uniform(0.5, 1.0)


def _push(git: _Git, commit: str, branch: str, target: str) -> bool:
    """Push; True when rejected because the branch moved, PushError on any other failure."""
    try:
        git("push", "--porcelain", target, f"{commit}:refs/heads/{branch}", network=True)
    except GitError as exc:
        reasons = _rejections(exc.stdout)
        if reasons and all(any(m in r for m in MOVED) for r in reasons):
            return True
        raise PushError(f"push to {target} ({branch}) failed: {_why(git, exc, reasons)}; the "
                        f"run's commit {commit[:7]} is on the local branch: push it with "
                        f"`git push {target} HEAD:{branch}` once that is fixed") from None
    return False


def _rejections(porcelain: str) -> list[str]:
    """`[rejected] (fetch first)`, `[remote rejected] (pre-receive hook declined)`...:
    the summary of each ref git could not push (flag `!` in --porcelain output)."""
    return [line.split("\t")[2] for line in porcelain.splitlines()
            if line.startswith("!") and line.count("\t") >= 2]


def _why(git: _Git, exc: GitError, reasons: list[str]) -> str:
    remote = [ln.strip() for ln in git.redact(exc.stderr).splitlines()
              if ln.startswith("remote:") and ln.removeprefix("remote:").strip()]
    if reasons:
        said = "; ".join(git.redact(r) for r in reasons)
        return f"rejected by the remote: {said}" + (f" ({' / '.join(remote)})" if remote else "")
    said = git.error(exc)
    if not any(marker in exc.stderr for marker in AUTH_FAILED):
        return said
    if "GIT_CONFIG_COUNT" in git.auth:
        return (f"the server refused GITHUB_TOKEN ({said}): the workflow needs "
                "`permissions: contents: write`")
    return f"authentication failed ({said}): set up credentials for this remote"


def _fetch(git: _Git, target: str, branch: str) -> str:
    try:
        git("fetch", "--quiet", "--no-tags", target, f"refs/heads/{branch}", network=True)
        return git("rev-parse", "--verify", "FETCH_HEAD^{commit}")
    except GitError as exc:
        raise PushError(f"fetching {target} ({branch}) to retry the push failed: "
                        f"{git.error(exc)}") from None


class Entry(NamedTuple):
    """A path's entry in a tree: `100644`, `100755` or `120000` (a symlink), and its blob."""

    mode: str
    blob: str


FILE, LINK = "100644", "120000"
# One changed path in a diff: its new entry, or None when the path was deleted.
Change = Entry | None


class RunFolder(NamedTuple):
    """The run's folder and `runs/latest`, relative to the work tree."""

    folder: str
    latest: str

    def holds(self, path: str) -> bool:
        return path.startswith(self.folder + "/") or path == self.latest


def _changes(git: _Git, old: str | None, new: str) -> dict[str, Change]:
    """What changed from `old` (None: the empty tree) to `new`, path by path."""
    old = old or git("hash-object", "-t", "tree", os.devnull)
    raw = git.raw("diff-tree", "-r", "-z", "--no-renames", "--no-commit-id", old, new)
    fields = raw.decode("utf-8", "surrogateescape").split("\0")
    changes: dict[str, Change] = {}
    for meta, path in zip(fields[0::2], fields[1::2], strict=False):
        if not meta.startswith(":"):
            continue
        _, new_mode, _, new_blob, status = meta[1:].split(" ")
        changes[path] = None if status == "D" else Entry(new_mode, new_blob)
    return changes


def _replay(git: _Git, req: Request, base: str | None, ours: str,
            remote: str) -> tuple[str, str | None]:
    """Our commit's changes on top of `remote`: an in-memory rebase.

    A path both sides changed differently is a conflict. The config file: the
    remote's file with the later last_run_date. `runs/latest`: the link to the
    newer of the two runs. Our log, record and run folder, when a concurrent run
    took the same run id: ours move to the next free id. Anything else:
    PushError, and nothing is changed.
    """
    top = git.where.top
    mine = _changes(git, base, ours)
    theirs = _changes(git, base, remote)
    run_files = (_rel(req.log, top), _rel(req.record, top))
    own = _run_folder(req, top)
    renamed, updates = None, {}
    if any(path in theirs for path in run_files):  # a concurrent run took our run id
        renamed, updates = _rename_run(git, req, ours, remote, mine, own)
    for path, change in mine.items():
        if renamed and (path in run_files or (own is not None and own.holds(path))):
            continue  # moved to the new run id by _rename_run
        if path not in theirs or theirs[path] == change:
            updates[path] = change  # only we changed it, or both the same way
        else:
            updates.update(_settle(git, req, ours, remote, own, path, change, theirs[path]))
    return _write_replayed(git, req, remote, updates, renamed), renamed


def _settle(git: _Git, req: Request, ours: str, remote: str, own: RunFolder | None, path: str,
            mine: Change, theirs: Change) -> dict[str, Change]:
    """A path both sides changed: what goes into the replayed commit (nothing, when
    the remote's side stays), or PushError when it cannot be settled here."""
    if req.config is not None and path == _rel(req.config, git.where.top) and theirs is not None:
        return {path: _merge_config(git, ours, remote, path)}
    if own is not None and path == own.latest:
        newer = _newer_than_theirs(git, req.run_id, remote, path, theirs)
        return {path: mine} if newer else {}
    if req.badge is not None and path == _rel(req.badge, git.where.top):
        return {path: mine}  # the badge of the newest run pushed
    raise PushError(f"push rejected and {path} was changed both here and on the remote: "
                    f"the run's commit {ours[:7]} is on the local branch; resolve it by "
                    f"hand (`git pull --rebase {req.settings.remote}`, then settle "
                    f"{path} and `git rebase --continue`)")


def _write_replayed(git: _Git, req: Request, remote: str, updates: dict[str, Change],
                    renamed: str | None) -> str:
    lines = []
    for path, change in updates.items():
        lines.append(f"0 {ZERO}\t{path}\0")
        if change is not None:
            lines.append(f"{change.mode} {change.blob}\t{path}\0")
    with _temporary_index(git.where.git_dir) as index:
        git("read-tree", remote, index=index)
        if lines:
            git("update-index", "-z", "--index-info", index=index,
                stdin="".join(lines).encode("utf-8", "surrogateescape"))
        tree = git(*WRITE_TREE, index=index)
    return _commit_tree(git, req, tree, remote, renamed)


def _blob(git: _Git, content: bytes) -> str:
    return git("hash-object", "-w", "--stdin", stdin=content)


def _show(git: _Git, commit: str, path: str) -> bytes:
    return git.raw("cat-file", "blob", f"{commit}:{path}")


def _merge_config(git: _Git, ours: str, remote: str, path: str) -> Change:
    """The remote's config file, with the later of the two last_run_dates.

    The remote's text is kept as it is, but for that one key, set the way a run
    sets it (config.with_key): its numbers, comments and layout are another
    run's or a person's, and must not be rewritten.
    """
    kind = config.kind_of(path)
    try:
        mine_text, theirs_text = (_show(git, commit, path).decode("utf-8")
                                  for commit in (ours, remote))
        mine = config.parse(mine_text, f"this run's {path}", kind)
        theirs = config.parse(theirs_text, f"the remote's {path}", kind)
        dates = [d for d in (mine.get("last_run_date"), theirs.get("last_run_date"))
                 if isinstance(d, str) and d]
        later = max(dates, key=_instant) if dates else None
        if later is not None and later != theirs.get("last_run_date"):
            theirs_text = config.with_key(theirs_text, f"the remote's {path}", kind,
                                          "last_run_date", later)
    except (GitError, UnicodeDecodeError, FatalError) as exc:
        why = exc.args[0] if isinstance(exc, FatalError) else "it cannot be read"
        raise PushError(f"push rejected and {path} conflicts with the remote's, and {why}: "
                        "resolve it by hand") from None
    return Entry(FILE, _blob(git, theirs_text.encode("utf-8")))


def _instant(value: str) -> float:
    try:
        return parse_timestamp(value).timestamp()
    except ValueError:
        return float("-inf")


def _rename_run(git: _Git, req: Request, ours: str, remote: str, mine: dict[str, Change],
                own: RunFolder | None) -> tuple[str, dict[str, Change]]:
    """A concurrent run pushed the same run id first: ours takes the next free one.

    Its log gets a last line naming the new id; its run folder moves to the new
    id's, and `runs/latest` points there. The old names stay as the remote has
    them: they hold the other run's files."""
    top = git.where.top
    log_rel, record_rel = _rel(req.log, top), _rel(req.record, top)
    log_dir = req.log.parent if req.log_dir is None else req.log_dir
    # The run ids of one minute share a day: every name of the new id is in the
    # same folders as the old one's.
    folder = Path(log_rel).parent
    runs = Path(_rel(runid.run_dir(log_dir, req.run_id, req.layout), top)).parent
    run_id = _free_run_id(git, req.run_id, remote, folder, runs)
    root = req.root.resolve()
    in_record = req.log.parent.resolve().relative_to(root)
    run_dir = (runid.run_dir(log_dir.resolve(), run_id, req.layout).relative_to(root).as_posix()
               if own else None)
    record = records.renamed(_show(git, ours, record_rel), run_id,
                             in_record.joinpath(runid.log_name(run_id)).as_posix(), run_dir)
    note = (f"a concurrent run had pushed run id {req.run_id} first: this run was committed "
            f"as {run_id}\n")
    log = _show(git, ours, log_rel) + req.note_prefix + note.encode()
    moved: dict[str, Change] = {
        (folder / runid.log_name(run_id)).as_posix(): Entry(FILE, _blob(git, log)),
        (folder / runid.record_name(run_id)).as_posix(): Entry(FILE, _blob(git, record)),
    }
    if own is not None:
        moved.update(_moved_run_folder(git, own, mine, run_id,
                                       runid.latest_target(run_id, req.layout)))
    return run_id, moved


def _free_run_id(git: _Git, run_id: str, remote: str, folder: Path, runs: Path) -> str:
    """The next run id of the minute whose log, record (in `folder`) and run folder
    (in `runs`) are free, both on the remote and in the work tree."""
    listing = git.raw("ls-tree", "-z", "--name-only", remote, "--", f"{folder}/", f"{runs}/")
    taken = set(listing.decode("utf-8", "surrogateescape").split("\0"))
    top = git.where.top

    def free(candidate: str) -> bool:
        names = [(folder / runid.log_name(candidate)).as_posix(),
                 (folder / runid.record_name(candidate)).as_posix(),
                 (runs / candidate).as_posix()]
        return not any(name in taken or (top / name).exists() for name in names)

    stub, n = runid.stub_of(run_id), runid.parse(run_id)[1] + 1
    while not free(runid.with_suffix(stub, n)):
        n += 1
    return runid.with_suffix(stub, n)


def _moved_run_folder(git: _Git, own: RunFolder, mine: dict[str, Change], run_id: str,
                      latest_target: str) -> dict[str, Change]:
    """The run's folder under the new run id, and `runs/latest` pointing there."""
    new_dir = posixpath.join(posixpath.dirname(own.folder), run_id)
    moved: dict[str, Change] = {
        new_dir + path[len(own.folder):]: change for path, change in mine.items()
        if path.startswith(own.folder + "/") and change is not None}
    if own.latest in mine:
        moved[own.latest] = Entry(LINK, _blob(git, latest_target.encode()))
    return moved


def _newer_than_theirs(git: _Git, run_id: str, remote: str, latest: str,
                       theirs: Change) -> bool:
    """Whether our run is newer than the one the remote's `runs/latest` points at
    (or that link is gone, or points at no run)."""
    if theirs is None or theirs.mode != LINK:
        return True
    try:
        target = posixpath.basename(_show(git, remote, latest).decode())  # flat or daily
        return runid.sort_key(run_id) > runid.sort_key(target)
    except (ValueError, UnicodeDecodeError):
        return True


def _run_folder(req: Request, top: Path) -> RunFolder | None:
    """The run's folder and `runs/latest`, relative to `top`, when it has a folder."""
    if req.run_dir is None:
        return None
    log_dir = req.log.parent if req.log_dir is None else req.log_dir
    return RunFolder(_rel(req.run_dir, top), _rel(runid.latest(log_dir), top, follow=False))

def _update_checkout(git: _Git, ours: str, pushed: str) -> bool:
    """Move the checkout to what was pushed, if nothing local would be lost.

    `git reset --keep` refuses when a file it must change has local edits.
    """
    if _head(git) != ours:
        return False
    try:
        git("reset", "-q", "--keep", pushed)
    except GitError:
        return False
    return True
