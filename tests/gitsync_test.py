"""Committing back, with real git: bare remotes in temporary folders, real clones,
real concurrent runs and a real smart-HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import Project
from githttp import git_http_server

from gitcron import gitsync
from gitcron.codes import EXIT_FAILED, EXIT_OK, EXIT_PUSH, EXIT_USAGE
from gitcron.config import GitSettings
from gitcron.logs import Masker

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
    assert changed == ["config.json", "data and logs/badge.json",
                       f"data and logs/workflow_{run_id}.json",
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
    git(project.root, "push", "-q")
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


def nothing_ran(project: Project, result: subprocess.CompletedProcess[str], says: str) -> None:
    assert result.returncode == EXIT_USAGE, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], result.stderr
    assert project.logs() == [] and "last_run_date" not in project.read_config()


def test_outside_a_repository_nothing_runs_and_exits_2(project: Project) -> None:
    project.module("1.a.py", "print('ok')\n")
    project.config({})
    nothing_ran(project, project.run("--push"), "is not in a git repository")
    assert project.run().returncode == EXIT_OK  # without commit-back it runs


def test_a_failed_run_that_cannot_push_still_exits_1(remote: Path) -> None:
    project = clone(remote, "work clone")
    project.module("1.a.py", "import sys; sys.exit(2)\n")
    (remote / "hooks" / "pre-receive").write_text("#!/bin/sh\nexit 1\n")
    (remote / "hooks" / "pre-receive").chmod(0o755)
    assert project.run("--push").returncode == EXIT_FAILED


def test_a_missing_remote_exits_2_before_anything_runs(remote: Path) -> None:
    project = clone(remote, "work clone")
    git(project.root, "remote", "remove", "origin")
    nothing_ran(project, project.run(), "git.remote:")
    assert "has no remote 'origin'" in project.run().stderr


def test_detached_head_needs_git_branch(remote: Path) -> None:
    project = clone(remote, "work clone")
    git(project.root, "checkout", "-q", "--detach")
    nothing_ran(project, project.run(), "HEAD is detached and git.branch is not set")
    config = project.read_config()
    config["git"]["branch"] = "results"
    project.config(config)
    assert project.run().returncode == EXIT_OK
    assert any(f.endswith(".log") for f in remote_files(remote, "results"))


@pytest.mark.parametrize("where", ["log_dir", "git.paths"])
def test_paths_outside_the_work_tree_exit_2(remote: Path, where: str) -> None:
    project = clone(remote, "work clone")
    config = project.read_config()
    if where == "log_dir":
        config["log_dir"] = "../elsewhere"
    else:
        config["git"]["paths"] = ["../elsewhere"]
    project.config(config)
    result = project.run()
    assert result.returncode == EXIT_USAGE
    assert "is outside the work tree" in result.stderr and where in result.stderr
    assert not (remote.parent / "elsewhere").exists() or where == "git.paths"


@pytest.mark.parametrize(("key", "value", "push"), [
    ("log_dir", ".git", "--push"), ("log_dir", ".git/logs", "--no-push"),
    ("log_dir", "sub/.GIT", "--push"), ("git.paths", ".git", "--push"),
    ("git.paths", "data/../.git/hooks", "--push"), ("git.paths", "linked", "--push"),
])
def test_paths_inside_dot_git_exit_2(remote: Path, key: str, value: str, push: str) -> None:
    project = clone(remote, "work clone")
    (project.root / "linked").symlink_to(".git")  # no name says .git: found by resolving
    config = project.read_config()
    if key == "log_dir":
        config["log_dir"] = value
    else:
        config["git"]["paths"] = ["notes.txt", value]
    project.config(config)
    head = git(project.root, "rev-parse", "HEAD")
    result = project.run(push)
    assert result.returncode == EXIT_USAGE, result.stdout + result.stderr
    line, = result.stderr.strip().splitlines()
    assert key in line and "inside" in line and ".git" in line, line
    assert not list((project.root / ".git").rglob("workflow_*"))
    assert git(project.root, "rev-parse", "HEAD") == head == git(remote, "rev-parse", "main")


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
    result = rerun.run()
    assert result.returncode == EXIT_OK, result.stdout
    assert len([f for f in remote_files(remote) if f.endswith(".log")]) == 2
    later = max(newest, rerun.read_config()["last_run_date"])
    assert remote_config(remote)["last_run_date"] == later
    assert git(remote, "rev-list", "--merges", "main") == ""
    # The checkout was moved to what was pushed.
    assert git(rerun.root, "rev-parse", "HEAD") == git(remote, "rev-parse", "main")


def push_from_seed(remote: Path, name: str, files: dict[str, str]) -> None:
    """Another clone changes `files` and pushes them, as a person or a run would."""
    other = clone(remote, name)
    for rel, text in files.items():
        (other.root / rel).write_text(text)
    git(other.root, "add", "--all")
    git(other.root, "commit", "-q", "-m", "elsewhere")
    git(other.root, "push", "-q", "origin", "main")


def test_a_config_conflict_keeps_the_remote_text_and_its_numbers(remote: Path) -> None:
    """Our last_run_date is later: it goes into the remote's text, which is otherwise
    kept as written (a float would round one number and make the other Infinity)."""
    late = clone(remote, "late clone")
    config = json.loads((late.root / "config.json").read_text())
    canonical = json.dumps(dict(config, last_run_date="2020-01-01T00:00:00+00:00"), indent=2)
    remote_text = canonical.removesuffix("\n}") + (
        ',\n  "limit": 1e999,\n  "ratio": 1.0000000000000000001\n}\n')
    push_from_seed(remote, "other clone", {"config.json": remote_text})
    result = late.run()
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    merged = git(remote, "show", "main:config.json") + "\n"
    assert '"limit": 1e999' in merged and '"ratio": 1.0000000000000000001' in merged
    assert json.loads(merged)["last_run_date"] == late.read_config()["last_run_date"]
    assert merged.replace(late.read_config()["last_run_date"], "2020-01-01T00:00:00+00:00") \
        == remote_text


def test_a_config_conflict_with_a_later_remote_date_keeps_the_remote_file_whole(
        remote: Path) -> None:
    late = clone(remote, "late clone")
    config = json.loads((late.root / "config.json").read_text())
    remote_text = json.dumps(dict(config, last_run_date="2999-01-01T00:00:00+00:00"), indent=4)
    push_from_seed(remote, "other clone", {"config.json": remote_text})
    assert late.run().returncode == EXIT_OK
    assert git(remote, "show", "main:config.json") == remote_text


def test_a_yaml_config_conflict_is_settled_line_by_line(remote: Path) -> None:
    yaml_config = "git:\n  push: always  # every run\nowned_by_a_module: {x: 1}\n"
    push_from_seed(remote, "yaml clone", {"config.yaml": yaml_config})
    seed = clone(remote, "switch clone")
    git(seed.root, "rm", "-q", "config.json")
    git(seed.root, "commit", "-q", "-m", "YAML only")
    git(seed.root, "push", "-q", "origin", "main")
    late = clone(remote, "late clone")
    remote_text = ("# settings of the modules\n" + yaml_config
                   + "last_run_date: '2020-01-01T00:00:00+00:00'  # moved by each run\n")
    push_from_seed(remote, "other clone", {"config.yaml": remote_text})
    command = [*late.command()[:2], "--config", str(late.root / "config.yaml")]
    result = subprocess.run(command, cwd=late.root, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    merged = git(remote, "show", "main:config.yaml") + "\n"
    ours = (late.root / "config.yaml").read_text()
    date = ours.split("last_run_date: '")[1].split("'")[0]
    assert date > "2020"
    assert merged == remote_text.replace("2020-01-01T00:00:00+00:00", date)


def test_a_config_conflict_with_a_broken_remote_config_exits_3_with_nothing_pushed(
        remote: Path) -> None:
    late = clone(remote, "late clone")
    push_from_seed(remote, "other clone", {"config.json": '{"git": {"push": "always"},\n'})
    before = git(remote, "rev-parse", "main")
    result = late.run()
    assert result.returncode == EXIT_PUSH
    assert ("push rejected and config.json conflicts with the remote's, and the remote's "
            "config.json: not valid JSON") in result.stdout + result.stderr
    assert "resolve it by hand" in result.stdout + result.stderr
    assert git(remote, "rev-parse", "main") == before


def test_a_config_deleted_on_the_remote_is_a_conflict_to_settle_by_hand(remote: Path) -> None:
    late = clone(remote, "late clone")
    other = clone(remote, "other clone")
    (other.root / "config.yaml").write_text("git:\n  push: always\n")
    git(other.root, "rm", "-q", "config.json")
    git(other.root, "add", "config.yaml")
    git(other.root, "commit", "-q", "-m", "the config is YAML now")
    git(other.root, "push", "-q", "origin", "main")
    before = git(remote, "rev-parse", "main")
    result = late.run()
    assert result.returncode == EXIT_PUSH
    assert "push rejected and config.json was changed both here and on the remote" in (
        result.stdout + result.stderr)
    assert git(remote, "rev-parse", "main") == before


def test_a_conflict_on_another_file_aborts_cleanly_with_exit_3(remote: Path) -> None:
    ours = clone(remote, "our clone")
    theirs = clone(remote, "their clone")
    (theirs.root / "notes.txt").write_text("their notes\n")
    git(theirs.root, "commit", "-q", "-am", "their edit")
    git(theirs.root, "push", "-q")
    remote_head = git(remote, "rev-parse", "main")
    config = ours.read_config()
    config["git"]["paths"] = ["notes.txt"]
    ours.config(config)  # uncommitted: committed with the run
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
    git(project.root, "push", "-q")
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
    from gitcron.records import renamed as renamed_record

    record = json.dumps({"run_id": "20261123_06h00", "log_file": "x/workflow_20261123_06h00.log",
                         "status": "success"}).encode()
    out = json.loads(renamed_record(record, "20261123_06h00_2", "x/workflow_20261123_06h00_2.log",
                                    None))
    assert out == {"run_id": "20261123_06h00_2", "log_file": "x/workflow_20261123_06h00_2.log",
                   "status": "success"}
    with_folder = json.loads(record)
    with_folder["run_dir"] = "x/runs/20261123_06h00"
    out = json.loads(renamed_record(json.dumps(with_folder).encode(), "20261123_06h00_2",
                                    "x/workflow_20261123_06h00_2.log", "x/runs/20261123_06h00_2"))
    assert out["run_dir"] == "x/runs/20261123_06h00_2"



def test_the_users_staging_stays_staged_and_uncommitted(remote: Path) -> None:
    project = clone(remote, "work clone")
    (project.root / "added.txt").write_text("new\n")
    (project.root / "notes.txt").write_text("staged edit\n")
    git(project.root, "add", "added.txt", "notes.txt")
    git(project.root, "rm", "-q", "--cached", "modules/1.a.py")  # a staged deletion
    before = git(project.root, "diff", "--cached", "--name-status")
    assert project.run().returncode == EXIT_OK
    run_id = project.record()["run_id"]
    assert sorted(git(remote, "show", "--name-only", "--format=", "main").splitlines()) == [
        "config.json", "data and logs/badge.json", f"data and logs/workflow_{run_id}.json",
        f"data and logs/workflow_{run_id}.log"]
    assert "modules/1.a.py" in remote_files(remote)
    assert git(project.root, "diff", "--cached", "--name-status") == before
    assert git(project.root, "show", ":notes.txt") == "staged edit"


def test_unchanged_files_under_git_paths_are_not_read_again(remote: Path) -> None:
    """The stat cache is kept: a file whose content changed behind identical stat data
    (git cannot see it without reading the file) is not committed."""
    project = clone(remote, "work clone")
    git(project.root, "config", "core.trustctime", "false")
    data = project.log_dir / "data.csv"
    data.parent.mkdir()
    data.write_text("a,1\n")
    os.utime(data, (1_600_000_000, 1_600_000_000))
    config = project.read_config()
    config["git"]["paths"] = ["data and logs"]
    project.config(config)
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "data")
    git(project.root, "push", "-q")
    inode = data.stat().st_ino
    with open(data, "r+") as handle:  # same size, same inode, same mtime
        handle.write("b,2\n")
    os.utime(data, (1_600_000_000, 1_600_000_000))
    assert data.stat().st_ino == inode
    assert project.run().returncode == EXIT_OK
    assert git(remote, "show", "main:data and logs/data.csv") == "a,1"


def test_a_log_dir_that_looks_like_pathspec_magic_is_a_path(remote: Path) -> None:
    project = clone(remote, "work clone")
    config = project.read_config()
    config["log_dir"] = ":!x"
    config["git"]["paths"] = [":!x"]
    project.config(config)
    result = project.run()
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    files = remote_files(remote)
    assert any(f.startswith(":!x/workflow_") and f.endswith(".log") for f in files)
    assert "notes.txt" in files and "modules/1.a.py" in files


def declining_hook(remote: Path, say: str) -> None:
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(f'#!/bin/sh\necho "{say}" >&2\nexit 1\n')
    hook.chmod(0o755)


def test_a_declining_hook_is_not_retried_and_its_reason_is_shown(remote: Path) -> None:
    project = clone(remote, "work clone")
    declining_hook(remote, "protected branch: pushes need a review ($PIPE_SECRET_TOKEN)")
    before = git(remote, "rev-parse", "main")
    result = project.run(env={"PIPE_SECRET_TOKEN": "s3cr3t-value-42"})
    assert result.returncode == EXIT_PUSH
    failure = [ln for ln in result.stdout.splitlines() if "push to origin (main) failed" in ln]
    assert len(failure) == 1, result.stdout
    assert "[remote rejected]" in failure[0] and "pre-receive hook declined" in failure[0]
    assert "remote: protected branch: pushes need a review (***)" in failure[0]
    assert "s3cr3t-value-42" not in result.stdout + project.log_text()
    assert "git push origin HEAD:main" in failure[0]
    assert not (project.root / ".git" / "FETCH_HEAD").exists()  # never fetched to retry
    assert git(remote, "rev-parse", "main") == before
    assert git(project.root, "log", "-1", "--format=%s").startswith("pipeline: success run")


def make_run_files(project: Project, run_id: str, text: str) -> gitsync.Request:
    log = project.log_dir / f"workflow_{run_id}.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text(text)
    record = log.with_suffix(".json")
    record.write_text(json.dumps({"run_id": run_id, "log_file": f"data and logs/{log.name}"}))
    return gitsync.Request(
        root=project.root, log=log, record=record, config=project.config_path, extra=(),
        settings=GitSettings(push="always"), run_id=run_id, status="success",
        env=dict(os.environ), note_prefix=b"NOTE | ")


def test_a_run_id_pushed_first_elsewhere_moves_to_the_next_free_one(remote: Path) -> None:
    first, second = clone(remote, "first clone"), clone(remote, "second clone")
    gitsync.commit_and_push(make_run_files(first, "20261123_06h00", "first\n"), Masker())
    pushed = gitsync.commit_and_push(make_run_files(second, "20261123_06h00", "second\n"), Masker())
    assert pushed is not None and pushed.renamed_to == "20261123_06h00_2"
    assert pushed.attempts == 2 and pushed.local_updated and pushed.advice is None
    show = lambda name: git(remote, "show", f"main:data and logs/{name}")  # noqa: E731
    assert show("workflow_20261123_06h00.log") == "first"
    assert show("workflow_20261123_06h00_2.log") == (
        "second\nNOTE | a concurrent run had pushed run id 20261123_06h00 first: this run was "
        "committed as 20261123_06h00_2")
    assert json.loads(show("workflow_20261123_06h00_2.json")) == {
        "run_id": "20261123_06h00_2", "log_file": "data and logs/workflow_20261123_06h00_2.log"}
    assert git(remote, "log", "-1", "--format=%s", "main") == (
        "pipeline: success run 20261123_06h00_2 [skip ci]")
    assert git(second.root, "rev-parse", "HEAD") == git(remote, "rev-parse", "main")
    assert git(second.root, "status", "--porcelain") == ""


def run_with_folder(remote: Path, name: str, run_id: str) -> gitsync.Request:
    """A run's files in a fresh clone, with a run folder and `runs/latest` at it."""
    project = clone(remote, name)
    request = make_run_files(project, run_id, f"{name}\n")
    run_dir = project.log_dir / "runs" / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "review.txt").write_text(f"{name} failed\n")
    os.symlink(run_id, run_dir.parent / "latest")
    record = json.loads(request.record.read_text())
    request.record.write_text(json.dumps(dict(record, run_dir=f"data and logs/runs/{run_id}")))
    return replace(request, run_dir=run_dir, extra=(
        f"data and logs/runs/{run_id}", "data and logs/runs/latest"))


def test_a_renamed_run_takes_its_folder_and_latest_along(remote: Path) -> None:
    """Both runs of one minute wrote a review report in `runs/<run id>/`: ours moves
    to the new id's folder and `runs/latest` points there; theirs stays as it is."""
    requests = [run_with_folder(remote, name, "20261123_06h00")
                for name in ("first clone", "second clone")]
    gitsync.commit_and_push(requests[0], Masker())
    pushed = gitsync.commit_and_push(requests[1], Masker())
    assert pushed is not None and pushed.renamed_to == "20261123_06h00_2"
    show = lambda name: git(remote, "show", f"main:data and logs/{name}")  # noqa: E731
    assert show("runs/20261123_06h00/review.txt") == "first clone failed"
    assert show("runs/20261123_06h00_2/review.txt") == "second clone failed"
    assert git(remote, "ls-tree", "main", "data and logs/runs/latest").startswith("120000 ")
    assert show("runs/latest") == "20261123_06h00_2"
    assert json.loads(show("workflow_20261123_06h00_2.json"))["run_dir"] == (
        "data and logs/runs/20261123_06h00_2")
    second = requests[1].root
    assert git(second, "status", "--porcelain") == ""
    latest = second / "data and logs" / "runs" / "latest"
    assert (latest / "review.txt").read_text() == "second clone failed\n"


def test_a_third_run_of_the_minute_takes_3_with_nested_files(remote: Path) -> None:
    requests = [run_with_folder(remote, name, "20261123_06h00") for name in "abc"]
    for request in requests:
        nested = request.run_dir / "sub"
        nested.mkdir()
        (nested / "out é.txt").write_text(f"{request.root.name} out\n")
    renamed = [gitsync.commit_and_push(request, Masker()).renamed_to for request in requests]
    assert renamed == [None, "20261123_06h00_2", "20261123_06h00_3"]
    for run_id, name in zip(("20261123_06h00", "20261123_06h00_2", "20261123_06h00_3"), "abc",
                            strict=True):
        assert git(remote, "show", f"main:data and logs/runs/{run_id}/sub/out é.txt") == (
            f"{name} out")
    assert git(remote, "show", "main:data and logs/runs/latest") == "20261123_06h00_3"
    for request in requests:
        assert git(request.root, "status", "--porcelain") == ""
    latest = requests[2].root / "data and logs" / "runs" / "latest"
    assert (latest / "sub" / "out é.txt").read_text() == "c out\n"


@pytest.mark.parametrize("order", ["older first", "newer first"])
def test_runs_latest_changed_by_two_runs_points_at_the_newer(remote: Path, order: str
                                                             ) -> None:
    older = run_with_folder(remote, "older clone", "20261123_06h00")
    newer = run_with_folder(remote, "newer clone", "20261123_06h01")
    for request in ((older, newer) if order == "older first" else (newer, older)):
        pushed = gitsync.commit_and_push(request, Masker())
        assert pushed is not None and pushed.renamed_to is None
    assert git(remote, "show", "main:data and logs/runs/latest") == "20261123_06h01"
    for run_id, who in (("20261123_06h00", "older"), ("20261123_06h01", "newer")):
        assert git(remote, "show", f"main:data and logs/runs/{run_id}/review.txt") == (
            f"{who} clone failed")


def test_the_advice_after_a_failed_push_works(remote: Path) -> None:
    first, second = clone(remote, "first clone"), clone(remote, "second clone")
    for project in (first, second):
        config = project.read_config()
        config["git"]["push_retries"] = 0
        project.config(config)
        git(project.root, "commit", "-q", "-am", "no retries")
    git(first.root, "push", "-q")
    assert first.run().returncode == EXIT_OK
    git(second.root, "fetch", "-q")
    git(second.root, "reset", "-q", "--hard", "origin/main~1")  # before the first run
    result = second.run()
    assert result.returncode == EXIT_PUSH
    advice = result.stdout.split("push it with `")[1].split("`")[0]
    for command in advice.split(" && "):
        git(second.root, *command.split()[1:])
    files = remote_files(remote)
    for project in (first, second):
        assert f"data and logs/workflow_{project.record()['run_id']}.log" in files
    assert json.loads(git(remote, "show", "main:config.json"))["git"]["push_retries"] == 0
    assert git(remote, "rev-list", "--merges", "main") == ""


def test_commit_only_when_something_changed(remote: Path) -> None:
    project = clone(remote, "work clone")
    head = git(project.root, "rev-parse", "HEAD")
    request = make_run_files(project, "20261123_06h00", "all skipped\n")
    request = replace(request, only_if_changed=True, extra=("data and logs",))
    assert gitsync.commit_and_push(request, Masker()) is None
    assert git(project.root, "rev-parse", "HEAD") == head == git(remote, "rev-parse", "main")
    assert git(project.root, "diff", "--cached", "--name-only") == ""
    (project.log_dir / "out.csv").write_text("a\n")
    pushed = gitsync.commit_and_push(request, Masker())
    assert pushed is not None and git(remote, "rev-parse", "main") == pushed.commit
    assert "data and logs/out.csv" in remote_files(remote)


def test_preflight_names_the_target(remote: Path) -> None:
    project = clone(remote, "work clone")
    settings = GitSettings(push="always", paths=("notes.txt",))
    assert gitsync.check(project.root, settings, {}, project.log_dir) == "push to origin main"
    env = {"GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": "o/r"}
    git(project.root, "remote", "remove", "origin")  # not needed with a token
    assert gitsync.check(project.root, settings, env, project.log_dir) == (
        "push to https://github.com/o/r.git main")


def test_git_paths_that_would_commit_env_are_refused_before_the_run(remote: Path) -> None:
    project = clone(remote, "work clone")
    project.config(project.read_config(), git={"push": "always", "paths": ["."]})
    (project.root / ".env").write_text("MY_API_KEY=supersecret1\n")
    result = project.run()
    assert result.returncode == EXIT_USAGE
    assert result.stderr.strip().endswith("git.paths entry '.' would commit .env, which holds "
                                          "secrets: add `.env` to .gitignore")
    assert not project.log_dir.exists()
    (project.root / ".gitignore").write_text(".env\n")
    assert project.run().returncode == 0
    assert ".env" not in remote_files(remote) and ".gitignore" in remote_files(remote)


def test_the_run_folder_and_latest_are_committed_and_the_checkout_left_clean(
        remote: Path) -> None:
    project = clone(remote, "work clone")
    project.module("1.a.py", "import os, pathlib\n"
                   "(pathlib.Path(os.environ['PIPELINE_RUN_DIR']) / 'report.txt').write_text('r')\n")
    assert project.run().returncode == 0
    assert project.run().returncode == 0
    ids = sorted(r["run_id"] for r in project.records())
    files = remote_files(remote)
    assert all(f"data and logs/runs/{i}/report.txt" in files for i in ids)
    assert "data and logs/runs/latest" in files
    assert git(remote, "cat-file", "-p", "main:data and logs/runs/latest") == ids[-1]
    assert git(project.root, "status", "--porcelain", "--", "data and logs") == ""


# ---- the user's own commits

def commit_of_mine(project: Project, name: str) -> str:
    (project.root / name).write_text("my work\n")
    git(project.root, "add", name)
    git(project.root, "commit", "-q", "-m", f"my {name}")
    return git(project.root, "rev-parse", "HEAD")


@pytest.mark.parametrize("remote_moved", [False, True])
def test_unpushed_commits_of_the_users_stop_the_run_before_it_starts(
        remote: Path, remote_moved: bool) -> None:
    project = clone(remote, "work clone")
    first, second = commit_of_mine(project, "a.txt"), commit_of_mine(project, "b.txt")
    if remote_moved:
        push_from_seed(remote, "other clone", {"other.txt": "pushed elsewhere\n"})
    on_remote = git(remote, "rev-parse", "main")
    result = project.run()
    nothing_ran(project, result, "commit-back: 2 local commits not on origin/main "
                f"({second[:7]}, {first[:7]}): push or drop them first, or run with --no-push")
    assert git(project.root, "rev-parse", "HEAD") == second
    assert (project.root / "a.txt").exists() and (project.root / "b.txt").exists()
    assert git(remote, "rev-parse", "main") == on_remote
    assert project.run("--no-push").returncode == EXIT_OK  # nothing pushed: runs as it is
    assert git(project.root, "rev-parse", "HEAD") == second


def test_a_run_that_could_not_push_is_pushed_along_by_the_next(remote: Path) -> None:
    project = clone(remote, "work clone")
    declining_hook(remote, "closed for now")
    assert project.run().returncode == EXIT_PUSH
    (remote / "hooks" / "pre-receive").unlink()
    first = project.records()[0]["run_id"]
    push_from_seed(remote, "other clone", {"other.txt": "pushed elsewhere\n"})
    result = project.run()
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    second = [r["run_id"] for r in project.records() if r["run_id"] != first][0]
    on_remote = remote_files(remote)
    for run_id in (first, second):
        for suffix in (".log", ".json"):
            assert f"data and logs/workflow_{run_id}{suffix}" in on_remote
            assert (project.log_dir / f"workflow_{run_id}{suffix}").exists()
    assert "other.txt" in on_remote
    assert git(project.root, "rev-parse", "HEAD") == git(remote, "rev-parse", "main")
    assert not (project.root / ".git" / gitsync.OWN_COMMITS).exists()
    assert project.run().returncode == EXIT_OK  # nothing of the runner's is left to name


def test_a_force_pushed_remote_costs_no_local_commit(remote: Path) -> None:
    project = clone(remote, "work clone")
    assert project.run().returncode == EXIT_OK
    previous = project.records()[0]["run_id"]
    before = git(project.root, "rev-parse", "HEAD")
    rewriter = clone(remote, "rewriting clone")
    git(rewriter.root, "checkout", "-q", "--orphan", "rewritten")
    git(rewriter.root, "rm", "-q", "-r", "--cached", ".")
    (rewriter.root / "fresh.txt").write_text("a new history\n")
    git(rewriter.root, "add", "fresh.txt", "config.json")
    git(rewriter.root, "commit", "-q", "-m", "rewritten")
    git(rewriter.root, "push", "-q", "--force", "origin", "rewritten:main")
    rewritten = git(remote, "rev-parse", "main")
    result = project.run()
    assert result.returncode == EXIT_PUSH, result.stdout + result.stderr
    said = [ln for ln in result.stdout.splitlines() if "no longer holds" in ln]
    assert len(said) == 1 and f"no longer holds {before[:7]}" in said[0], result.stdout
    assert "force-pushed" in said[0] and "nothing was pushed" in said[0]
    assert git(remote, "rev-parse", "main") == rewritten
    assert git(project.root, "rev-parse", "HEAD^") == before  # the run's commit, kept
    for name in (f"data and logs/workflow_{previous}.log", f"data and logs/workflow_{previous}.json",
                 "modules/1.a.py"):
        assert (project.root / name).exists(), name
    assert git(project.root, "status", "--porcelain", "--untracked-files=no") == ""


def test_a_full_disk_while_committing_is_one_line_and_no_traceback(remote: Path) -> None:
    project = clone(remote, "work clone")
    # The kernel's own ENOSPC: every write to /dev/full fails with it.
    (project.root / ".git" / f"{gitsync.OWN_COMMITS}.tmp").symlink_to("/dev/full")
    head = git(project.root, "rev-parse", "HEAD")
    result = project.run()
    assert result.returncode == EXIT_PUSH, result.stdout + result.stderr
    said = [ln for ln in result.stdout.splitlines() if "committing the run failed" in ln]
    assert len(said) == 1 and "No space left on device" in said[0], result.stdout
    assert "Traceback" not in result.stdout + result.stderr + project.log_text()
    assert git(project.root, "rev-parse", "HEAD") == head == git(remote, "rev-parse", "main")
    assert git(project.root, "diff", "--cached", "--name-only") == ""


# ---- symlinks that lead out of the repository

def outside_folder(remote: Path) -> Path:
    outside = remote.parent / "outside"
    outside.mkdir()
    (outside / "theirs.txt").write_text("not the repository's\n")
    return outside


def only_error(result: subprocess.CompletedProcess[str], says: str) -> None:
    errors = [ln for ln in result.stdout.splitlines()  # besides the run's last line
              if "| ERROR" in ln and " failed in " not in ln]
    assert len(errors) == 1 and says in errors[0], result.stdout


def test_a_run_folder_replaced_by_a_symlink_out_is_not_followed(remote: Path) -> None:
    project = clone(remote, "work clone")
    outside = outside_folder(remote)
    project.module("1.a.py", """
        import os, shutil
        run_dir = os.environ["PIPELINE_RUN_DIR"]
        open(os.path.join(run_dir, "out.csv"), "w").write("a,1\\n")
        shutil.rmtree(run_dir)
        os.symlink(os.environ["OUTSIDE"], run_dir)
    """)
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "a module that swaps its folder")
    git(project.root, "push", "-q")
    result = project.run(env={"OUTSIDE": str(outside)})
    assert result.returncode == EXIT_FAILED, result.stdout + result.stderr
    only_error(result, "was replaced during the run by a symlink to " + str(outside))
    record = project.record()
    assert record["status"] == "failed" and record["run_dir"] is None
    assert sorted(p.name for p in outside.iterdir()) == ["theirs.txt"]  # no review.txt there
    on_remote = remote_files(remote)
    assert f"data and logs/workflow_{record['run_id']}.json" in on_remote
    assert not [name for name in on_remote if "/runs/" in name]
    assert not (project.log_dir / "runs" / "latest").exists()


def test_a_log_folder_replaced_by_a_symlink_gets_no_record_written_through_it(
        remote: Path) -> None:
    project = clone(remote, "work clone")
    outside = outside_folder(remote)
    project.module("1.a.py", """
        import os
        logs = os.environ["PIPELINE_LOG_DIR"]
        os.rename(logs, logs + " (moved)")
        os.symlink(os.environ["OUTSIDE"], logs)
    """)
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "a module that swaps the log folder")
    git(project.root, "push", "-q")
    before = git(remote, "rev-parse", "main")
    result = project.run(env={"OUTSIDE": str(outside)})
    assert result.returncode == EXIT_FAILED, result.stdout + result.stderr
    only_error(result, "the log folder")
    assert sorted(p.name for p in outside.iterdir()) == ["theirs.txt"]
    assert git(remote, "rev-parse", "main") == before  # nothing committed from there


def test_a_symlink_out_under_git_paths_is_never_committed(remote: Path) -> None:
    project = clone(remote, "work clone")
    outside = outside_folder(remote)
    (project.root / "data").mkdir()
    (project.root / "data" / "kept.csv").write_text("a,1\n")
    config = project.read_config()
    config["git"]["paths"] = ["data"]
    project.config(config)
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "data")
    git(project.root, "push", "-q")
    (project.root / "data" / "link").symlink_to(outside)
    before = git(remote, "rev-parse", "main")
    result = project.run()
    assert result.returncode == EXIT_PUSH, result.stdout + result.stderr
    only_error(result, "data/link is a symlink to " + str(outside))
    assert git(remote, "rev-parse", "main") == before
    assert git(project.root, "ls-files", "data") == "data/kept.csv"
