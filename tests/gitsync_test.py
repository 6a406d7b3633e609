"""Committing back, with real git: bare remotes in temporary folders, real clones,
real concurrent runs and a real smart-HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import Project
from githttp import git_http_server

from pipeline import gitsync
from pipeline.codes import EXIT_FAILED, EXIT_OK, EXIT_PUSH
from pipeline.config import GitSettings

TOKEN = "ghs_TestToken1234567890abcdef"


def git(cwd: Path, *args: str, check: bool = True) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {result.stderr}")
    return result.stdout.strip()


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare remote holding a small project on `main`."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(tmp_path, "clone", "-q", str(bare), str(tmp_path / "seed clone"))
    seed = Project(tmp_path / "seed clone")
    seed.module("1.a.py", "print('module a ran')\n")
    seed.config({"git": {"push": "always"}, "owned_by_a_module": {"x": 1}})
    (seed.root / "notes.txt").write_text("notes\n")
    git(seed.root, "add", ".")
    git(seed.root, "commit", "-q", "-m", "initial")
    git(seed.root, "push", "-q", "origin", "HEAD:main")
    return bare


def clone(remote: Path, name: str, ref: str | None = None) -> Project:
    root = remote.parent / name
    git(remote.parent, "clone", "-q", "--branch", "main", str(remote), str(root))
    if ref:
        git(root, "checkout", "-q", "-B", "main", ref)
    return Project(root)


def remote_files(remote: Path, ref: str = "main") -> list[str]:
    return git(remote, "ls-tree", "-r", "--name-only", ref).splitlines()


def remote_config(remote: Path) -> dict:
    return json.loads(git(remote, "show", "main:config.json"))


def test_one_commit_with_exactly_the_run_files(remote: Path) -> None:
    project = clone(remote, "work clone")
    (project.root / "notes.txt").write_text("staged edit\n")
    git(project.root, "add", "notes.txt")
    (project.root / "notes.txt").write_text("staged edit\nand an unstaged one\n")
    (project.root / "untracked.txt").write_text("mine\n")
    result = project.run()
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    record = project.record()
    run_id = record["run_id"]
    changed = git(remote, "show", "--name-only", "--format=", "main").splitlines()
    assert changed == ["config.json", f"data and logs/workflow_{run_id}.json",
                       f"data and logs/workflow_{run_id}.log"]
    assert git(remote, "log", "-1", "--format=%s|%an|%ae", "main") == (
        f"pipeline: success run {run_id} [skip ci]|Test User|test@example.com")
    assert git(project.root, "rev-parse", "HEAD") == git(remote, "rev-parse", "main")
    # The user's work: still staged, still unstaged, still untracked.
    assert git(project.root, "status", "--porcelain") == "MM notes.txt\n?? untracked.txt"
    assert git(project.root, "diff", "--cached") .count("+staged edit") == 1
    assert remote_config(remote)["last_run_date"] == project.read_config()["last_run_date"]
    assert remote_config(remote)["owned_by_a_module"] == {"x": 1}
    assert "pushed " in result.stdout


def test_the_log_of_a_failed_run_is_pushed_too(remote: Path) -> None:
    project = clone(remote, "work clone")
    project.module("1.a.py", "import sys; print('broken', file=sys.stderr); sys.exit(4)\n")
    git(project.root, "commit", "-q", "-am", "break module a")
    git(project.root, "push", "-q")
    result = project.run()
    assert result.returncode == EXIT_FAILED
    run_id = project.record()["run_id"]
    assert f"data and logs/workflow_{run_id}.log" in remote_files(remote)
    log = git(remote, "show", f"main:data and logs/workflow_{run_id}.log")
    assert "| 1.a | broken" in log
    assert "last_run_date" not in remote_config(remote)  # unchanged config is not committed
    assert git(remote, "log", "-1", "--format=%s", "main").startswith("pipeline: failed run")


def test_author_from_settings_and_message_template(remote: Path) -> None:
    project = clone(remote, "work clone")
    config = project.read_config()
    config["git"].update(author_name="Pipeline Bot", author_email="bot@example.org",
                         commit_message="data: {run_id} ({status})")
    project.config(config)
    git(project.root, "commit", "-q", "-am", "settings")
    assert project.run().returncode == EXIT_OK
    run_id = project.record()["run_id"]
    assert git(remote, "log", "-1", "--format=%an <%ae>|%cn|%s", "main") == (
        f"Pipeline Bot <bot@example.org>|Pipeline Bot|data: {run_id} (success)")


def test_without_an_identity_the_actions_bot_commits(remote: Path, tmp_path: Path) -> None:
    project = clone(remote, "work clone")
    empty = tmp_path / "empty.gitconfig"
    empty.write_text("")
    assert project.run(env={"GIT_CONFIG_GLOBAL": str(empty)}).returncode == EXIT_OK
    assert git(remote, "log", "-1", "--format=%an <%ae>", "main") == (
        "github-actions[bot] <41898282+github-actions[bot]@users.noreply.github.com>")


@pytest.mark.parametrize(("mode", "flag", "dry", "env", "expected"), [
    ("auto", None, False, {}, False),
    ("auto", None, False, {"GITHUB_ACTIONS": "true"}, True),
    ("auto", None, False, {"GITHUB_TOKEN": "x"}, True),
    ("auto", None, False, {"GITHUB_ACTIONS": "false"}, False),
    ("always", None, False, {}, True),
    ("never", None, False, {"GITHUB_ACTIONS": "true"}, False),
    ("never", True, False, {}, True),
    ("always", False, False, {}, False),
    ("always", True, True, {}, False),
])
def test_when_to_push(mode: str, flag: bool | None, dry: bool, env: dict, expected: bool) -> None:
    assert GitSettings(push=mode).wanted(flag, dry, env) is expected  # type: ignore[arg-type]


def test_no_push_and_dry_run_commit_nothing(remote: Path) -> None:
    project = clone(remote, "work clone")
    head = git(project.root, "rev-parse", "HEAD")
    assert project.run("--no-push").returncode == EXIT_OK
    assert project.run("--dry-run").returncode == EXIT_OK
    assert git(project.root, "rev-parse", "HEAD") == head == git(remote, "rev-parse", "main")


def test_outside_a_repository_the_run_stands_and_exits_3(project: Project) -> None:
    project.module("1.a.py", "print('ok')\n")
    project.config({})
    result = project.run("--push")
    assert result.returncode == EXIT_PUSH
    assert "is not in a git repository: nothing was committed" in result.stdout
    assert project.record()["status"] == "success"
    assert "last_run_date" in project.read_config()


def test_a_failed_run_that_cannot_push_still_exits_1(project: Project) -> None:
    project.module("1.a.py", "import sys; sys.exit(2)\n")
    project.config({})
    assert project.run("--push").returncode == EXIT_FAILED


def test_a_missing_remote_exits_3_and_keeps_the_local_commit(remote: Path) -> None:
    project = clone(remote, "work clone")
    git(project.root, "remote", "remove", "origin")
    result = project.run()
    assert result.returncode == EXIT_PUSH
    assert "push to origin (main) failed: fatal: 'origin' does not appear to be a git " \
        "repository" in result.stdout
    assert "is on the local branch" in result.stdout
    assert git(project.root, "log", "-1", "--format=%s").startswith("pipeline: success run")


def test_detached_head_needs_git_branch(remote: Path) -> None:
    project = clone(remote, "work clone")
    git(project.root, "checkout", "-q", "--detach")
    result = project.run()
    assert result.returncode == EXIT_PUSH
    assert "HEAD is detached and git.branch is not set" in result.stdout
    config = project.read_config()
    config["git"]["branch"] = "results"
    project.config(config)
    assert project.run().returncode == EXIT_OK
    assert any(f.endswith(".log") for f in remote_files(remote, "results"))


def test_git_paths_commit_additions_and_deletions(remote: Path) -> None:
    project = clone(remote, "work clone")
    config = project.read_config()
    config["git"]["paths"] = ["data and logs", "missing-folder"]
    project.config(config)
    git(project.root, "commit", "-q", "-am", "commit the log folder")
    git(project.root, "push", "-q")
    old = project.root / "data and logs" / "workflow_20200101_00h00.log"
    old.parent.mkdir()
    old.write_text("old\n")
    git(project.root, "add", "--", str(old))
    git(project.root, "commit", "-q", "-m", "an old log")
    git(project.root, "push", "-q")
    old.unlink()  # a retention module pruned it
    (project.log_dir / "data").mkdir()
    (project.log_dir / "data" / "out.csv").write_text("a,b\n")
    assert project.run().returncode == EXIT_OK
    files = remote_files(remote)
    assert "data and logs/data/out.csv" in files
    assert "data and logs/workflow_20200101_00h00.log" not in files
    assert "notes.txt" in files


def run_concurrently(projects: list[Project]) -> list[subprocess.CompletedProcess[str]]:
    procs = [subprocess.Popen(p.command(), cwd=p.root, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for p in projects]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def test_three_clones_pushing_at_once_all_land(remote: Path) -> None:
    projects = [clone(remote, f"clone {i}") for i in range(3)]
    for p in projects:
        config = p.read_config()
        config["git"]["push_retries"] = 6
        p.config(config)
    results = run_concurrently(projects)
    assert [r.returncode for r in results] == [EXIT_OK] * 3, [r.stdout for r in results]
    logs = [f for f in remote_files(remote) if f.endswith(".log")]
    records = [f for f in remote_files(remote) if f.endswith(".json") and "workflow_" in f]
    assert len(logs) == 3 and len(records) == 3
    for path in records:  # every record names its own log, after any renaming
        record = json.loads(git(remote, "show", f"main:{path}"))
        assert f"data and logs/workflow_{record['run_id']}.json" == path
        assert record["log_file"] in logs
    # Linear history: no merge commits, the three runs on top of the initial one.
    assert git(remote, "rev-list", "--merges", "main") == ""
    assert len(git(remote, "rev-list", "main").splitlines()) == 4
    dates = [p.read_config()["last_run_date"] for p in projects]
    assert remote_config(remote)["last_run_date"] == max(dates)
    assert remote_config(remote)["owned_by_a_module"] == {"x": 1}


def test_a_rerun_from_an_old_commit_lands_on_top(remote: Path) -> None:
    first = clone(remote, "first clone")
    old = git(first.root, "rev-parse", "HEAD")
    assert first.run().returncode == EXIT_OK
    newest = first.read_config()["last_run_date"]
    rerun = clone(remote, "rerun clone", ref=old)  # GitHub checks out the run's own commit
    rerun.config(dict(rerun.read_config(), last_run_date="2020-01-01T00:00:00+00:00"))
    git(rerun.root, "commit", "-q", "-am", "an older state")
    result = rerun.run()
    assert result.returncode == EXIT_OK, result.stdout
    assert len([f for f in remote_files(remote) if f.endswith(".log")]) == 2
    later = max(newest, rerun.read_config()["last_run_date"])
    assert remote_config(remote)["last_run_date"] == later
    assert git(remote, "rev-list", "--merges", "main") == ""
    # The checkout was moved to what was pushed.
    assert git(rerun.root, "rev-parse", "HEAD") == git(remote, "rev-parse", "main")


def test_a_conflict_on_another_file_aborts_cleanly_with_exit_3(remote: Path) -> None:
    ours = clone(remote, "our clone")
    theirs = clone(remote, "their clone")
    (theirs.root / "notes.txt").write_text("their notes\n")
    git(theirs.root, "commit", "-q", "-am", "their edit")
    git(theirs.root, "push", "-q")
    remote_head = git(remote, "rev-parse", "main")
    config = ours.read_config()
    config["git"]["paths"] = ["notes.txt"]
    ours.config(config)
    git(ours.root, "commit", "-q", "-am", "commit notes too")
    (ours.root / "notes.txt").write_text("our notes\n")
    result = ours.run()
    assert result.returncode == EXIT_PUSH
    assert "notes.txt was changed both here and on the remote" in result.stdout
    assert git(remote, "rev-parse", "main") == remote_head  # nothing forced
    assert (ours.root / "notes.txt").read_text() == "our notes\n"
    assert git(ours.root, "status", "--porcelain") == ""  # the local commit holds the run
    assert git(ours.root, "log", "-1", "--format=%s").startswith("pipeline: success run")
    assert not list((ours.root / ".git").glob("pipeline-index-*"))


def token_env(server_url: str, token: str) -> dict[str, str]:
    return {"GITHUB_TOKEN": token, "GITHUB_REPOSITORY": "owner/remote",
            "GITHUB_SERVER_URL": server_url, "GITHUB_ACTIONS": "true"}


def all_bytes_under(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def http_remote(remote: Path, tmp_path: Path) -> Path:
    """The remote, moved to where the HTTP server serves it as owner/remote, pushable."""
    (tmp_path / "owner").mkdir()
    bare = tmp_path / "owner" / "remote.git"
    os.rename(remote, bare)
    git(bare, "config", "http.receivepack", "true")
    return bare


def test_token_push_over_http_never_leaks_the_token(http_remote: Path, tmp_path: Path) -> None:
    bare = http_remote
    project = clone(bare, "work clone")
    project.module("1.a.py", "import base64, os; t = os.environ['GITHUB_TOKEN']; print('token is', t)"
                   "; print(base64.b64encode(b'x-access-token:' + t.encode()).decode())\n")
    project.config(project.read_config(), modules=[{"path": "modules/1.a.py", "github_token": True}])
    git(project.root, "commit", "-qam", "the module may read the token")
    with git_http_server(tmp_path, TOKEN) as server:
        result = project.run(env=token_env(server.url, TOKEN))
        assert result.returncode == EXIT_OK, result.stdout + result.stderr
        assert any(h for h in server.seen_headers)  # the header was sent, and accepted
    run_id = project.record()["run_id"]
    assert f"data and logs/workflow_{run_id}.log" in remote_files(bare)
    encoded = server.expected.split()[1].encode()
    for secret in (TOKEN.encode(), encoded):
        assert secret not in all_bytes_under(project.root)  # .git/config, logs, records
        assert secret not in all_bytes_under(bare)
        assert secret.decode() not in result.stdout + result.stderr
    assert "| 1.a | token is ***" in project.log_text()


def test_a_wrong_token_exits_3_with_a_clear_line(http_remote: Path, tmp_path: Path) -> None:
    project = clone(http_remote, "work clone")
    wrong = "ghs_WrongToken0987654321"
    with git_http_server(tmp_path, TOKEN) as server:
        result = project.run(env=token_env(server.url, wrong))
    assert result.returncode == EXIT_PUSH
    lines = result.stdout.splitlines()
    failure = [ln for ln in lines if "| ERROR" in ln and "push to" in ln and "failed" in ln]
    assert len(failure) == 1
    assert [ln for ln in lines if ln.startswith("::error title=push failed::push to ")]
    assert f"push to {server.url}/owner/remote.git (main) failed:" in failure[0]
    assert "the server refused GITHUB_TOKEN" in failure[0]
    assert "permissions: contents: write" in failure[0]
    assert wrong not in result.stdout + result.stderr
    assert wrong.encode() not in all_bytes_under(project.root)
    assert project.record()["status"] == "success"


def test_redaction_of_git_errors() -> None:
    class Exc:
        stderr = f"stderr: 'fatal: could not read from https://x:{TOKEN}@host'"
        status = 128

    g = gitsync._Git.__new__(gitsync._Git)
    g.redact = lambda text: text.replace(TOKEN, "***")
    assert TOKEN not in g.error(Exc())  # type: ignore[arg-type]


def test_renamed_record_rewrites_its_id_and_log() -> None:
    from pipeline.run import renamed_record

    record = json.dumps({"run_id": "20261123_06h00", "log_file": "x/workflow_20261123_06h00.log",
                         "status": "success"}).encode()
    out = json.loads(renamed_record(record, "20261123_06h00_2", "x/workflow_20261123_06h00_2.log"))
    assert out == {"run_id": "20261123_06h00_2", "log_file": "x/workflow_20261123_06h00_2.log",
                   "status": "success"}

