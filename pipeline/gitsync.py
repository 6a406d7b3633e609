"""Commit the run back to the repository and push it.

One commit per run holding exactly the run's files. It is built in a
temporary index, so that whatever the user has staged stays staged and
uncommitted, and unstaged or untracked work is not touched. A push rejected
because the branch moved is replayed onto the remote branch and retried;
nothing is ever force-pushed.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from git import Repo
from git.exc import GitCommandError, InvalidGitRepositoryError, NoSuchPathError

from pipeline.config import GitSettings, parse_timestamp

BOT_NAME = "github-actions[bot]"
BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"
NETWORK_TIMEOUT_SECONDS = 120.0
BACKOFF_SECONDS = (1.0, 2.0, 4.0, 8.0)
# What git prints when the server refused the credentials, or when it had none to give.
AUTH_FAILED = ("could not read Username", "Authentication failed", "The requested URL returned "
               "error: 401", "The requested URL returned error: 403", "Permission denied",
               "Write access to repository not granted")
REJECTED = ("[rejected]", "non-fast-forward", "fetch first", "[remote rejected]",
            "cannot lock ref", "failed to update ref")
Redact = Callable[[str], str]
# Renames a run's record for a new run id: (record bytes, new run id, new log path) -> bytes.
RecordRenamer = Callable[[bytes, str, str], bytes]


class PushError(Exception):
    """Committing or pushing failed; the message is redacted and says what to do."""


@dataclass(frozen=True)
class Request:
    """What to commit: paths are absolute, or relative to `root` for `extra`."""

    root: Path  # the config's folder
    log: Path
    record: Path
    config: Path
    extra: tuple[str, ...]  # git.paths
    settings: GitSettings
    run_id: str
    status: str
    env: Mapping[str, str]
    rename_record: RecordRenamer


@dataclass(frozen=True)
class Pushed:
    commit: str
    branch: str
    target: str
    attempts: int
    renamed_to: str | None = None  # the run id, when a concurrent run had taken ours
    local_updated: bool = True


@dataclass
class _Git:
    """Runs git as argument lists, with a fixed environment; redacts every error."""

    repo: Repo
    env: dict[str, str]
    redact: Redact
    auth: dict[str, str] = field(default_factory=dict)

    def __call__(self, *args: str, index: str | None = None, network: bool = False,
                 extra_env: Mapping[str, str] | None = None) -> str:
        env = dict(self.env, **(extra_env or {}))
        if index is not None:
            env["GIT_INDEX_FILE"] = index
        if network:
            env.update(self.auth)
        return self.repo.git.execute(
            ["git", *args], env=env,
            kill_after_timeout=NETWORK_TIMEOUT_SECONDS if network else None,
            # A cancelled workflow may signal our whole process group; the commit
            # and push of that run must not die with it: its log matters most.
            start_new_session=True,
        )

    def error(self, exc: GitCommandError) -> str:
        """git's own last words, redacted (GitPython does not redact stderr)."""
        text = exc.stderr if isinstance(exc.stderr, str) else str(exc)
        lines = [ln.strip() for ln in self.redact(text).splitlines() if ln.strip()]
        lines = [ln.removeprefix("stderr: ").strip("'") for ln in lines]
        useful = [ln for ln in lines if ln.startswith(("fatal:", "error:", "remote:", "!"))]
        return " / ".join((useful or lines or [f"git exited with {exc.status}"])[-2:])


def commit_and_push(req: Request, redact: Redact) -> Pushed:
    """Commit the run's files on top of HEAD and push them; PushError on any failure."""
    with _open_repo(req.root) as repo:
        git = _Git(repo, _base_env(req.env), redact)
        top = Path(repo.working_tree_dir or req.root).resolve()
        branch = _branch(repo, req.settings)
        target, git.auth, secrets = _target(req.settings, req.env)
        for secret in secrets:  # the encoded header too, should git ever print it
            git.redact = _also_redacting(git.redact, secret)
        ours, parent = _commit(git, repo, req, top)
        return _push_with_retries(git, repo, req, top, ours, parent, branch, target)


@contextmanager
def _open_repo(root: Path) -> Iterator[Repo]:
    try:
        repo = Repo(root, search_parent_directories=True)
    except (InvalidGitRepositoryError, NoSuchPathError):
        raise PushError(f"{root} is not in a git repository: nothing was committed "
                        "(run `git init`, or use --no-push)") from None
    with repo:  # GitPython leaks `git cat-file` processes otherwise
        if repo.bare:
            raise PushError(f"{root}: the repository is bare: nothing was committed")
        yield repo


def _base_env(env: Mapping[str, str]) -> dict[str, str]:
    base = {"GIT_TERMINAL_PROMPT": "0"}  # never wait for a password
    author = {k: v for k, v in env.items() if k.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_"))}
    return dict(base, **author)


def _also_redacting(redact: Redact, secret: str) -> Redact:
    return lambda text: redact(text).replace(secret, "***")


def _branch(repo: Repo, settings: GitSettings) -> str:
    if settings.branch:
        return settings.branch
    if repo.head.is_detached:
        raise PushError("HEAD is detached and git.branch is not set: nothing was committed "
                        '(check out a branch, or set "git": {"branch": "main"} in the config)')
    return repo.active_branch.name


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


def _configured_identity(git: _Git) -> dict[str, str]:
    """user.name and user.email as git sees them (repository, global, system)."""
    try:
        lines = git("config", "--get-regexp", r"^user\.(name|email)$").splitlines()
    except GitCommandError:
        return {}  # neither is set
    return dict(line.partition(" ")[::2] for line in lines)


def _identity(git: _Git, settings: GitSettings) -> dict[str, str]:
    """git.author_*, else the repository's configured identity, else the Actions bot."""
    configured = {} if settings.author_name and settings.author_email else (
        _configured_identity(git))
    name = settings.author_name or configured.get("user.name") or BOT_NAME
    email = settings.author_email or configured.get("user.email") or BOT_EMAIL
    return {"GIT_AUTHOR_NAME": str(name), "GIT_AUTHOR_EMAIL": str(email),
            "GIT_COMMITTER_NAME": str(name), "GIT_COMMITTER_EMAIL": str(email)}


def _rel(path: Path, top: Path) -> str:
    try:
        return path.resolve().relative_to(top).as_posix()
    except ValueError:
        raise PushError(f"{path} is outside the repository {top}: it cannot be committed") from None


def _head(repo: Repo) -> str | None:
    """HEAD's commit, read in process (no git process to spawn)."""
    try:
        return repo.head.commit.hexsha
    except ValueError:
        return None  # a repository with no commit yet


@contextmanager
def _temporary_index(repo: Repo) -> Iterator[str]:
    fd, path = tempfile.mkstemp(dir=repo.git_dir, prefix="pipeline-index-")
    os.close(fd)
    os.unlink(path)  # git creates it; an empty file is not a valid index
    try:
        yield path
    finally:
        Path(path).unlink(missing_ok=True)
        Path(path + ".lock").unlink(missing_ok=True)


def _commit(git: _Git, repo: Repo, req: Request, top: Path) -> tuple[str, str | None]:
    """The run's commit on top of HEAD, and its parent; HEAD moves to it, the rest
    stays as it was."""
    parent = _head(repo)
    run_files = [_rel(p, top) for p in (req.log, req.record, req.config)]
    extra = _extra_paths(git, req, top)
    try:
        with _temporary_index(repo) as index:
            git("read-tree", *([parent] if parent else ["--empty"]), index=index)
            git("add", "--force", "--", *run_files, index=index)
            if extra:
                git("add", "--all", "--", *extra, index=index)
            tree = git("write-tree", index=index)
        commit = _commit_tree(git, req, tree, parent)
        git("update-ref", "-m", f"pipeline: run {req.run_id}", "HEAD", commit, parent or "")
        # The real index learns our paths' new state; nothing else in it changes.
        # (--no-refresh: a refresh would stat every file of the work tree.)
        git("reset", "-q", "--no-refresh", "HEAD", "--", *run_files, *extra)
    except GitCommandError as exc:
        raise PushError(f"committing the run failed: {git.error(exc)}") from None
    return commit, parent


def _extra_paths(git: _Git, req: Request, top: Path) -> list[str]:
    """git.paths that exist now or are tracked (so that deletions are committed too)."""
    found = []
    for name in req.extra:
        rel = _rel(req.root / name, top)
        if (top / rel).exists() or git("ls-files", "--", rel):
            found.append(rel)
    return found


def _commit_tree(git: _Git, req: Request, tree: str, parent: str | None) -> str:
    message = req.settings.commit_message.format(run_id=req.run_id, status=req.status)
    parents = ["-p", parent] if parent else []
    return git("commit-tree", tree, *parents, "-m", message,
               extra_env=_identity(git, req.settings))


def _push_with_retries(git: _Git, repo: Repo, req: Request, top: Path, ours: str,
                       base: str | None, branch: str, target: str) -> Pushed:
    commit, renamed = ours, None
    for attempt in range(1, req.settings.push_retries + 2):
        rejected = _push(git, commit, branch, target)
        if not rejected:
            updated = commit == ours or _update_checkout(git, ours, commit,
                                                         list(_changes(git, base, ours)))
            return Pushed(commit, branch, target, attempt, renamed, updated)
        if attempt > req.settings.push_retries:
            break
        time.sleep(_backoff(attempt))
        remote = _fetch(git, target, branch)
        commit, renamed = _replay(git, repo, req, top, base, ours, remote)
    raise PushError(
        f"push to {target} ({branch}) still rejected after {req.settings.push_retries} retries: "
        f"the branch keeps moving; the run's commit {ours[:7]} is on the local branch "
        f"(push it with `git pull --rebase && git push`)")


def _backoff(attempt: int) -> float:
    """Exponential with jitter, so that racing runs do not collide again in step."""
    return BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS)) - 1] * random.uniform(0.5, 1.0)


def _push(git: _Git, commit: str, branch: str, target: str) -> bool:
    """Push; True when rejected because the branch moved, PushError on any other failure."""
    try:
        git("push", "--porcelain", target, f"{commit}:refs/heads/{branch}", network=True)
    except GitCommandError as exc:
        text = f"{exc.stdout}\n{exc.stderr}"
        if any(marker in text for marker in REJECTED):
            return True
        raise PushError(f"push to {target} ({branch}) failed: {_why(git, exc)}; the run's "
                        f"commit {commit[:7]} is on the local branch: push it when that is "
                        "fixed") from None
    return False


def _why(git: _Git, exc: GitCommandError) -> str:
    said = git.error(exc)
    if not any(marker in str(exc.stderr) for marker in AUTH_FAILED):
        return said
    if "GIT_CONFIG_COUNT" in git.auth:
        return (f"the server refused GITHUB_TOKEN ({said}): the workflow needs "
                "`permissions: contents: write`")
    return f"authentication failed ({said}): set up credentials for this remote"


def _fetch(git: _Git, target: str, branch: str) -> str:
    try:
        git("fetch", "--quiet", "--no-tags", target, f"refs/heads/{branch}", network=True)
        return git("rev-parse", "--verify", "FETCH_HEAD^{commit}")
    except GitCommandError as exc:
        raise PushError(f"fetching {target} ({branch}) to retry the push failed: "
                        f"{git.error(exc)}") from None


# One changed path in a diff: (mode, blob), or None when the path was deleted.
Change = tuple[str, str] | None


def _changes(git: _Git, old: str | None, new: str) -> dict[str, Change]:
    """What changed from `old` (None: the empty tree) to `new`, path by path."""
    old = old or git("hash-object", "-t", "tree", os.devnull)
    raw = git("diff-tree", "-r", "-z", "--no-renames", "--no-commit-id", old, new)
    fields = raw.split("\0")
    changes: dict[str, Change] = {}
    for meta, path in zip(fields[0::2], fields[1::2], strict=False):
        if not meta.startswith(":"):
            continue
        _, new_mode, _, new_blob, status = meta[1:].split(" ")
        changes[path] = None if status == "D" else (new_mode, new_blob)
    return changes


def _replay(git: _Git, repo: Repo, req: Request, top: Path, base: str | None, ours: str,
            remote: str) -> tuple[str, str | None]:
    """Our commit's changes on top of `remote`: an in-memory rebase.

    A path both sides changed differently is a conflict. config.json: the
    remote's file with the later last_run_date. Our log and record, when a
    concurrent run took the same run id: ours move to the next free id.
    Anything else: PushError, and nothing is changed.
    """
    mine = _changes(git, base, ours)
    theirs = _changes(git, base, remote)
    config_rel = _rel(req.config, top)
    run_files = (_rel(req.log, top), _rel(req.record, top))
    renamed, updates = None, {}
    if any(path in theirs for path in run_files):  # a concurrent run took our run id
        renamed, updates = _rename_run(git, req, top, ours, remote)
    for path, change in mine.items():
        if renamed and path in run_files:
            continue
        if path not in theirs or theirs[path] == change:
            updates[path] = change
        elif path == config_rel:
            updates[path] = _merge_config(git, ours, remote, path)
        else:
            raise PushError(f"push rejected and {path} was changed both here and on the remote: "
                            f"the run's commit {ours[:7]} is on the local branch; resolve it by "
                            "hand (git pull --rebase)")
    return _write_replayed(git, repo, req, remote, updates), renamed


def _write_replayed(git: _Git, repo: Repo, req: Request, remote: str,
                    updates: dict[str, Change]) -> str:
    with _temporary_index(repo) as index:
        git("read-tree", remote, index=index)
        for path, change in updates.items():
            if change is None:
                git("update-index", "--force-remove", "--", path, index=index)
            else:
                git("update-index", "--add", "--cacheinfo", f"{change[0]},{change[1]},{path}",
                    index=index)
        tree = git("write-tree", index=index)
    return _commit_tree(git, req, tree, remote)


def _blob(git: _Git, content: bytes) -> str:
    with tempfile.NamedTemporaryFile("wb", delete=False) as handle:
        handle.write(content)
    try:
        return git("hash-object", "-w", "--", handle.name)
    finally:
        os.unlink(handle.name)


def _show(git: _Git, commit: str, path: str) -> bytes:
    return git("cat-file", "blob", f"{commit}:{path}").encode()


def _merge_config(git: _Git, ours: str, remote: str, path: str) -> Change:
    """The remote's config.json, with the later of the two last_run_dates."""
    try:
        mine = json.loads(_show(git, ours, path))
        theirs = json.loads(_show(git, remote, path))
    except (GitCommandError, ValueError):
        raise PushError(f"push rejected and {path} conflicts with the remote's, which is not "
                        "valid JSON: resolve it by hand") from None
    dates = [d for d in (mine.get("last_run_date"), theirs.get("last_run_date")) if d]
    if dates:
        theirs["last_run_date"] = max(dates, key=_instant)
    text = json.dumps(theirs, indent=2, ensure_ascii=False) + "\n"
    return ("100644", _blob(git, text.encode()))


def _instant(value: str) -> float:
    try:
        return parse_timestamp(value).timestamp()
    except ValueError:
        return float("-inf")


def _rename_run(git: _Git, req: Request, top: Path, ours: str, remote: str
                ) -> tuple[str, dict[str, Change]]:
    """A concurrent run pushed the same run id first: ours takes the next free one."""
    log_rel, record_rel = _rel(req.log, top), _rel(req.record, top)
    folder = Path(log_rel).parent
    taken = set(git("ls-tree", "--name-only", remote, "--", f"{folder}/").split("\n"))
    stub = "_".join(req.run_id.split("_")[:2])  # without any _N it already had

    def free(run_id: str) -> bool:
        names = [(folder / f"workflow_{run_id}{ext}").as_posix() for ext in (".log", ".json")]
        return not any(name in taken or (top / name).exists() for name in names)

    run_id = next(f"{stub}_{n}" for n in itertools.count(2) if free(f"{stub}_{n}"))
    new_log = (folder / f"workflow_{run_id}.log").as_posix()
    new_record = (folder / f"workflow_{run_id}.json").as_posix()
    log_in_record = req.log.parent.resolve().relative_to(req.root.resolve()).joinpath(
        f"workflow_{run_id}.log").as_posix()
    record = req.rename_record(_show(git, ours, record_rel), run_id, log_in_record)
    log_blob = git("rev-parse", f"{ours}:{log_rel}")
    # The old names stay as the remote has them: they hold the other run's files.
    moved: dict[str, Change] = {
        new_log: ("100644", log_blob), new_record: ("100644", _blob(git, record)),
    }
    return run_id, moved


def _update_checkout(git: _Git, ours: str, pushed: str, paths: list[str]) -> bool:
    """Move the checkout to what was pushed, if nothing local would be lost.

    `git reset --keep` refuses when a file it must change has local edits.
    """
    if _head(git.repo) != ours:
        return False
    try:
        # Our paths were staged without stat data (see _commit): refresh first, or
        # --keep would take them for local edits.
        git("update-index", "-q", "--refresh", "--remove", "--", *paths)
        git("reset", "-q", "--keep", pushed)
    except GitCommandError:
        return False
    return True
