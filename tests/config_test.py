from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import OK, REPO, Project

from gitcron import config as cfg
from gitcron import plan, retry, schema
from gitcron.codes import EXIT_USAGE, FatalError


def test_defaults_for_an_empty_config(project: Project) -> None:
    project.config({})
    config = cfg.load(str(project.config_path))
    assert config.modules is None
    assert config.log_dir == project.root / "data and logs"
    assert config.timezone_name == "UTC"
    assert config.default_timeout_seconds == 3600
    assert config.git == cfg.GitSettings()
    assert config.git.commit_message == "pipeline: {status} run {run_id} [skip ci]"
    assert config.last_run_date is None


def test_module_entries_take_defaults_and_overrides(project: Project) -> None:
    project.module("a.py", OK)
    project.module("b.sh", "exit 0\n")
    project.config(default_timeout_seconds=60, modules=[
        "modules/a.py",
        {"path": "modules/b.sh", "critical": False, "timeout_seconds": 5, "retries": 2,
         "retry_delay_seconds": 0.5, "enabled": False},
    ])
    a, b = cfg.load(str(project.config_path)).modules or ()
    assert (a.name, a.critical, a.timeout_seconds, a.retries, a.enabled) == ("a", True, 60, 0, True)
    assert a.command == (sys.executable, str(project.root.resolve() / "modules/a.py"))
    assert (b.critical, b.timeout_seconds, b.retries, b.retry_delay_seconds, b.enabled) == (
        False, 5, 2, 0.5, False)
    assert b.command[0] == "bash"
    assert b.rel == "modules/b.sh"



def test_top_level_retry_keys_are_every_modules_default(project: Project) -> None:
    project.module("a.py", OK)
    project.module("b.py", OK)
    project.config(retry_on_exit_codes=[75, 69], retry_backoff="exponential",
                   retry_max_delay_seconds=600, modules=[
                       {"path": "modules/a.py", "retries": 3, "retry_delay_seconds": 5},
                       {"path": "modules/b.py", "retry_on_exit_codes": [1],
                        "retry_backoff": "fixed", "retry_max_delay_seconds": 30}])
    a, b = cfg.load(str(project.config_path)).modules or ()
    assert a.retry_policy == retry.Policy(3, 5.0, (75, 69), "exponential", 600.0)
    assert b.retry_policy == retry.Policy(0, 0.0, (1,), "fixed", 30.0)


def test_discovered_modules_take_the_top_level_retry_keys(project: Project) -> None:
    project.module("1.a.py", OK)
    project.config(retry_on_exit_codes=[75])
    config = cfg.load(str(project.config_path))
    (spec,) = plan.build(config, plan.Selection()).modules
    assert spec.retry_on_exit_codes == (75,)


def test_without_retry_keys_every_failure_is_retried_as_before(project: Project) -> None:
    project.module("a.py", OK)
    project.config(modules=[{"path": "modules/a.py", "retries": 1}])
    (spec,) = cfg.load(str(project.config_path)).modules or ()
    assert spec.retry_policy == retry.Policy(1, 0.0, None, "fixed", 3600.0)


@pytest.mark.parametrize(("name", "number", "short"), [
    ("1.file_retrieval.py", "1", "file_retrieval"),
    ("02-transform.sh", "2", "transform"),
    ("10_prune", "10", "prune"),
    ("3.fetch", "3", "fetch"),
    ("helper.py", None, None),
])
def test_names_numbers_and_short_names(project: Project, name: str, number: str | None,
                                        short: str | None) -> None:
    path = project.module(name, "#!/bin/sh\nexit 0\n", mode=0o755)
    spec = cfg.module_spec(path, project.root, display="c", key="k")
    assert spec.number == number
    assert spec.short_name == short
    assert spec.name == {"1.file_retrieval.py": "1.file_retrieval", "02-transform.sh":
                         "02-transform", "10_prune": "10_prune", "3.fetch": "3.fetch",
                         "helper.py": "helper"}[name]


def test_an_executable_runs_directly_and_a_plain_file_is_refused(project: Project) -> None:
    runnable = project.module("1.run", "#!/bin/sh\nexit 0\n", mode=0o755)
    plain = project.module("2.notes.txt", "text", mode=0o644)
    assert cfg.module_command(runnable, "c", "k") == (str(runnable),)
    with pytest.raises(FatalError, match=r"2\.notes\.txt.*neither \.py, \.sh nor executable"):
        cfg.module_command(plain, "config.json", "modules[1].path")


# Each bad config: (content, the words the one error line must hold).
BAD_CONFIGS = [
    ("{not json", "not valid JSON"),
    ("[]", "must hold a JSON object"),
    ('{"modules": "modules/a.py"}', "modules: must be a list"),
    ('{"modules": [42]}', "modules[0]: must be a path or an object"),
    ('{"modules": [{"critical": true}]}', "modules[0].path: is required"),
    ('{"modules": [{"path": "modules/a.py", "critcal": true}]}', "modules[0].critcal: unknown key"),
    ('{"modules": ["modules/missing.py"]}', "modules[0].path: no such module file"),
    ('{"modules": ["../outside.py"]}', "modules[0].path: '../outside.py' leaves the project"),
    ('{"modules": ["modules/a.py", "modules/a.py"]}', "modules[1]: module 'a' is listed twice"),
    ('{"modules": [{"path": "modules/a.py", "critical": "yes"}]}',
     "modules[0].critical: must be true or false"),
    ('{"modules": [{"path": "modules/a.py", "timeout_seconds": 0}]}',
     "modules[0].timeout_seconds: must be a number of seconds above 0"),
    ('{"modules": [{"path": "modules/a.py", "timeout_seconds": "60"}]}',
     "modules[0].timeout_seconds: must be a number"),
    ('{"modules": [{"path": "modules/a.py", "retries": -1}]}',
     "modules[0].retries: must be a whole number"),
    ('{"modules": [{"path": "modules/a.py", "retries": 1.5}]}',
     "modules[0].retries: must be a whole number"),
    ('{"modules": [{"path": "modules/a.py", "retry_delay_seconds": -2}]}',
     "modules[0].retry_delay_seconds: must be a number of seconds from 0"),
    ('{"modules": [{"path": "modules/a.py", "enabled": 1}]}', "modules[0].enabled: must be true"),
    ('{"modules": [{"path": "modules/a.py", "retry_on_exit_codes": 75}]}',
     "modules[0].retry_on_exit_codes: must be a list of exit codes"),
    ('{"modules": [{"path": "modules/a.py", "retry_on_exit_codes": [10]}]}',
     "modules[0].retry_on_exit_codes: 10 means skipped, which is never retried"),
    ('{"retry_on_exit_codes": [0]}', "retry_on_exit_codes: 0 is not the exit code of a failure"),
    ('{"retry_on_exit_codes": [256]}', "retry_on_exit_codes: 256 is not the exit code of a"),
    ('{"retry_on_exit_codes": [true]}', "retry_on_exit_codes: must be a list of exit codes"),
    ('{"retry_backoff": "linear"}', 'retry_backoff: must be "fixed" or "exponential"'),
    ('{"modules": [{"path": "modules/a.py", "retry_backoff": "exp"}]}',
     'modules[0].retry_backoff: must be "fixed" or "exponential"'),
    ('{"retry_max_delay_seconds": 0}', "retry_max_delay_seconds: must be a number of seconds above"),
    ('{"retry_backoff": "exponential", "modules": [{"path": "modules/a.py", "retries": 2}]}',
     'modules[0].retry_delay_seconds: retry_backoff "exponential" doubles it'),
    ('{"retry_on_exit_code": [75]}', "did you mean 'retry_on_exit_codes'?"),
    ('{"modules": ["modules/notes.txt"]}', "neither .py, .sh nor executable"),
    ('{"timezone": "Mars/Olympus_Mons"}', "timezone: unknown IANA time zone"),
    ('{"timezone": 1}', "timezone: must be a string"),
    ('{"log_dir": ""}', "log_dir: must be a non-empty string"),
    ('{"default_timeout_seconds": true}', "default_timeout_seconds: must be a number"),
    ('{"mask_env": "DATABASE_URL"}', "mask_env: must be a list of non-empty strings"),
    ('{"last_run_date": "yesterday"}', "last_run_date: must be an ISO 8601 time"),
    ('{"last_run_date": "2026-11-23T06:00:00"}', "last_run_date: must be an ISO 8601 time with"),
    ('{"git": []}', "git: must be an object"),
    ('{"git": {"push": "sometimes"}}', 'git.push: must be "auto", "always" or "never"'),
    ('{"git": {"pussh": "never"}}', "git.pussh: unknown key"),
    ('{"git": {"push_retries": "3"}}', "git.push_retries: must be a whole number"),
    ('{"git": {"paths": [""]}}', "git.paths: must be a list of non-empty strings"),
    ('{"git": {"branch": 5}}', "git.branch: must be a string or null"),
    ('{"git": {"commit_message": "run {date}"}}', "git.commit_message: only {run_id} and {status}"),
    ('{"modules": []}', "modules: no modules to run"),
    # Limits: far below what the event loop can wait for (about 24.8 days).
    ('{"default_timeout_seconds": 2200000}', "default_timeout_seconds: must be a number of seconds above 0 and at most 604800"),
    ('{"modules": [{"path": "modules/a.py", "retry_delay_seconds": 1e300}]}', "modules[0].retry_delay_seconds: must be a number of seconds from 0 to 604800"),
    ('{"modules": [{"path": "modules/a.py", "retries": 101}]}', "modules[0].retries: must be a whole number from 0 to 100"),
    ('{"default_timeout_seconds": Infinity}', "default_timeout_seconds: must be a number of seconds above 0"),
    # Near misses of the orchestrator's own keys are typos, not module settings.
    ('{"mask_envs": ["DATABASE_URL"]}', "unknown key 'mask_envs': did you mean 'mask_env'?"),
    ('{"logdir": "logs"}', "unknown key 'logdir': did you mean 'log_dir'?"),
    ('{"modle": []}', "unknown key 'modle': did you mean 'modules'?"),
    ('{"modules": [{"path": "modules/a.py", "critcal": false}]}', "modules[0].critcal: unknown key (did you mean 'critical'?)"),
    ('{"git": {"comit": "changes"}}', "git.comit: unknown key (did you mean 'commit'?)"),
    ('{"git": {"commit": "sometimes"}}', 'git.commit: must be "always" or "changes"'),
    # Odd input: one line, never a traceback.
    ('{"log_dir": "a\\u0000b"}', "log_dir: holds a NUL character"),
    ('{"git": {"paths": ["a\\u0000b"]}}', "git.paths: must be a list of non-empty strings"),
    ('{"a": 1, "a": 2}', "the key 'a' appears twice in one object"),
    ('{"git": {"push": "never", "push": "always"}}', "the key 'push' appears twice"),
    ('[' * 100000 + ']' * 100000, "nested too deep to be a config"),
    ('{"git": {"commit_message": "{status!r:>99999999999}"}}', "git.commit_message: only {run_id} and {status} may be used ({status!r:>99999999999} is not)"),
    ('{"git": {"commit_message": "run {"}}', "git.commit_message: not a valid template"),
    # Recovery scripts are checked when the config loads, not after a failure at 06:00.
    ('{"modules": [{"path": "modules/a.py", "on_failure": "modules/gone.sh"}]}', "modules[0].on_failure: no such module file: 'modules/gone.sh'"),
    ('{"modules": [{"path": "modules/a.py", "on_failure": "modules/notes.txt"}]}', "modules[0].on_failure: 'notes.txt' is neither .py, .sh nor executable"),
    ('{"modules": [{"path": "modules/a.py", "on_failure": "../outside.py"}]}', "modules[0].on_failure: '../outside.py' leaves the project folder"),
    ('{"modules": [{"path": "modules/a.py", "github_token": "yes"}]}', "modules[0].github_token: must be true or false"),
    ('{"window_minutes": 0}', "window_minutes: must be a number of minutes above 0"),
    ('{"window_minutes": 1e308}', "window_minutes: must be a number of minutes above 0 and at most"),
    ('{"last_run_date": "9999-12-31T23:59:59-14:00"}', "last_run_date: must be an ISO 8601 time"),
    ('{"modules": [{"path": "modules/a.py", "on_failure": "modules/a.py\\u0000"}]}', "modules[0].on_failure: holds a NUL character"),
    ('{"schedule": "every day"}', "schedule: must be a cron line of five fields"),
    ('{"notify": {"webhook": "https://x"}}', "notify: must be a list of channels"),
    ('{"notify": [{"on": ["failed"]}]}', "notify[0]: needs exactly one of `webhook` (a URL) and `email`"),
    ('{"notify": [{"webhook": "ftp://x"}]}', "notify[0].webhook: must be an http:// or https:// URL"),
    ('{"notify": [{"webhook": "https://x", "on": ["broken"]}]}', "notify[0].on: 'broken' is not a run status"),
    ('{"notify": [{"webhook": "https://x", "hedaers": {}}]}', "notify[0].hedaers: unknown key (did you mean 'headers'?)"),
    ('{"notify": [{"email": {"to": "ops", "from": "a@b", "host": "h"}}]}', "notify[0].email.to: must be an address or a list"),
    ('{"notify": [{"email": {"to": "o@x", "host": "h"}}]}', "notify[0].email.from: is required"),
    ('{"notify": [{"email": {"to": "o@x", "from": "a@b", "host": "h", "port": 0}}]}', "notify[0].email.port: must be a port number"),
    ('{"modules": ["modules/a.py"], "notify": [{"webhook": "https://x/${HOOK_PATH}"}]}', "notify[0]: ${HOOK_PATH} is used but the variable HOOK_PATH is not set"),
    ('{"modules": ["modules/a.py"], "notify": [{"email": {"to": "o@x", "from": "a@b", "host": "h", "password_env": "SMTP_PW"}}]}', "notify[0].email.password_env: the variable SMTP_PW is not set"),
]


@pytest.mark.parametrize(("content", "words"), BAD_CONFIGS, ids=[w for _, w in BAD_CONFIGS])
def test_a_bad_config_exits_2_with_one_line_and_writes_nothing(
    project: Project, content: str, words: str
) -> None:
    project.module("a.py", "open('ran', 'w').close()\n")
    project.module("notes.txt", "not a module")
    (project.root.parent / "outside.py").write_text(OK)
    project.config_path.write_text(content)
    before = sorted(p.name for p in project.root.rglob("*"))
    result = project.run()
    assert result.returncode == EXIT_USAGE
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert str(project.config_path) in lines[0]
    assert words in lines[0]
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in project.root.rglob("*")) == before  # nothing written, nothing ran
    assert project.config_path.read_text() == content


def test_a_missing_config_file_is_named(project: Project) -> None:
    result = project.run()
    assert result.returncode == EXIT_USAGE
    assert f"{project.config_path}: config file not found" in result.stderr


def test_utc_works_without_a_zone_database() -> None:
    assert cfg.zone("UTC").utcoffset(None) is not None
    with pytest.raises(ValueError):
        cfg.zone("Not/AZone")


def test_parse_timestamp_accepts_z() -> None:
    assert cfg.parse_timestamp("2026-11-23T06:00:00Z").utcoffset().total_seconds() == 0


def test_set_key_keeps_order_unknown_keys_and_reads_the_file_afresh(project: Project) -> None:
    project.config({"zeta": {"nested": [1, 2]}, "last_run_date": None, "alpha": "é"})
    config = cfg.load(str(project.config_path))
    # A module changes its own settings during the run.
    project.config({"zeta": {"nested": [3]}, "last_run_date": None, "alpha": "é", "new": 1})
    cfg.set_key(config, "last_run_date", "2026-11-23T06:00:00+00:00")
    text = project.config_path.read_text()
    assert list(json.loads(text)) == ["zeta", "last_run_date", "alpha", "new"]
    assert json.loads(text)["zeta"] == {"nested": [3]}
    assert text.endswith("}\n")
    assert '\n  "alpha": "\\u00e9"' in text  # the file's own text: its escape stays


# The first write of last_run_date keeps the user's layout (a real run writes it).
LAYOUTS = [
    # one member a line, four spaces, odd spacing and numbers: one line more, at the end
    ('{\n    "modules" : ["modules/1.a.py"],\n    "ratio" : 1.50,\n    "big": 1e999,\n'
     '    "name": "caf\\u00e9"\n}\n',
     '{\n    "modules" : ["modules/1.a.py"],\n    "ratio" : 1.50,\n    "big": 1e999,\n'
     '    "name": "caf\\u00e9",\n    "last_run_date": "{date}"\n}\n'),
    # tabs and CRLF
    ('{\r\n\t"modules": ["modules/1.a.py"]\r\n}',
     '{\r\n\t"modules": ["modules/1.a.py"],\r\n\t"last_run_date": "{date}"\r\n}'),
    # on one line, compact: appended in the same style
    ('{"modules":["modules/1.a.py"],"git":{"push":"never"}}\n',
     '{"modules":["modules/1.a.py"],"git":{"push":"never"},"last_run_date":"{date}"}\n'),
    ('{"modules": ["modules/1.a.py"]}', '{"modules": ["modules/1.a.py"], "last_run_date": "{date}"}'),
    # already there: only the value's text changes
    ('{ "last_run_date":null,\n  "modules": [ "modules/1.a.py" ] }',
     '{ "last_run_date":"{date}",\n  "modules": [ "modules/1.a.py" ] }'),
    # an empty object has no layout to keep
    ('{}', '{\n  "last_run_date": "{date}"\n}\n'),
]


@pytest.mark.parametrize(("before", "after"), LAYOUTS)
def test_a_run_writes_last_run_date_into_the_users_own_layout(project: Project, before: str,
                                                              after: str) -> None:
    project.module("1.a.py", "import sys\nsys.exit(0)\n")
    project.config_path.write_bytes(before.encode())
    result = project.run("--no-push")
    assert result.returncode == 0, result.stderr
    date = json.loads(project.config_path.read_text())["last_run_date"]
    assert project.config_path.read_bytes() == after.replace("{date}", date).encode()


def test_with_key_leaves_a_text_it_cannot_follow_to_the_full_writer() -> None:
    assert cfg._json_text_with_key("[1]", "k", "v") is None
    text = cfg.with_key('{"a": 1}', "config.json", "json", "a", "x")
    assert text == '{"a": "x"}'


def test_write_atomic_keeps_the_file_mode_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "config.json"
    target.write_text("{}")
    target.chmod(0o640)
    cfg.write_atomic(target, '{"a": 1}\n')
    assert target.read_text() == '{"a": 1}\n'
    assert oct(target.stat().st_mode & 0o777) == oct(0o640)
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    from gitcron import config as cfg
    config = cfg.load(sys.argv[1])
    n = 0
    while True:
        n += 1
        cfg.set_key(config, "last_run_date", f"2026-11-23T06:00:{n % 60:02d}+00:00")
        print(n, flush=True)
""")


def test_kill_9_while_writing_a_large_config_never_leaves_a_broken_file(project: Project) -> None:
    """SIGKILL the writer at random moments; the file must always parse."""
    big = {f"stage_setting_{i}": {"values": list(range(50)), "name": "x" * 40} for i in range(400)}
    project.config(big, last_run_date=None)
    size = project.config_path.stat().st_size
    assert size > 200_000
    rng = random.Random(1234)
    for _ in range(15):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(project.config_path), str(REPO)],
            stdout=subprocess.PIPE, text=True,
        )
        assert writer.stdout is not None
        for _ in range(rng.randint(1, 4)):
            writer.stdout.readline()
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        data = json.loads(project.config_path.read_text())
        assert data["stage_setting_399"]["values"][-1] == 49
        assert data["last_run_date"].startswith("2026-11-23T06:00:")
    # The temporary files of killed writers may remain; they never shadow the config.
    assert all(p.name.endswith(".tmp") for p in project.root.glob(".config.json.*"))


def test_env_file_never_overrides_a_variable_already_set(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("FROM_FILE=file\nBOTH=file\nEMPTY\n")
    env = cfg.load_env(tmp_path, {"BOTH": "environment", "OTHER": "x"})
    assert env == {"FROM_FILE": "file", "BOTH": "environment", "OTHER": "x"}
    assert cfg.load_env(tmp_path / "nowhere", {"A": "1"}) == {"A": "1"}


def test_a_nul_in_env_is_one_line_naming_the_file(project: Project) -> None:
    project.module("1.a.py", "open('ran', 'w')\n")
    project.config({})
    (project.root / ".env").write_bytes(b"X=a\x00b\n")
    result = project.run()
    assert result.returncode == EXIT_USAGE
    assert len(result.stderr.splitlines()) == 1 and ".env" in result.stderr, result.stderr
    assert "NUL" in result.stderr and "Traceback" not in result.stderr
    assert not (project.root / "ran").exists() and not project.log_dir.exists()


def test_writing_last_run_date_keeps_module_settings_as_written(project: Project) -> None:
    text = ('{\n  "x": 1e99999999,\n  "y": 1.0000000000000000001,\n  "z": [1, 2.50, -0, {}],\n'
            '  "n": {"deep": [true, null, "é"]},\n  "w": NaN\n}\n')
    project.module("1.a.py", OK)
    project.config_path.write_text(text)
    assert project.run().returncode == 0
    after = project.config_path.read_text()
    assert '"x": 1e99999999,' in after and '"y": 1.0000000000000000001,' in after
    assert '"w": NaN' in after and '2.50' in after and '"é"' in after
    assert json.loads(after)["last_run_date"] and list(json.loads(after))[-1] == "last_run_date"


def test_dump_json_matches_the_standard_library_on_ordinary_values() -> None:
    value = {"a": [1, 2, {"b": None, "c": []}], "d": {}, "e": "ü\n\"", "f": True, "g": 1.5}
    assert cfg.dump_json(value) == json.dumps(value, indent=2, ensure_ascii=False)


def test_an_executable_without_an_interpreter_line_is_refused_at_load(project: Project) -> None:
    project.module("1.fetch", "echo hi\n", mode=0o755)
    project.config({})
    result = project.run()
    assert result.returncode == EXIT_USAGE
    assert result.stderr.strip().endswith("modules/1.fetch: '1.fetch' has a run bit but no #! "
                                          "line: add one (e.g. #!/usr/bin/env bash), or name it "
                                          ".sh or .py")
    assert not project.log_dir.exists()
    project.module("1.fetch", "#!/bin/sh\necho hi\n", mode=0o755)
    assert project.run().returncode == 0


def test_the_reference_in_docs_is_the_one_the_declarations_make() -> None:
    text = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    committed = text.split("<!-- generated: begin -->\n")[1].split("<!-- generated: end -->")[0]
    assert committed == cfg.reference(), (
        "docs/config.md is out of date: paste the output of "
        "python -c 'from gitcron import config; print(config.reference())'")


def test_every_declared_key_says_what_it_is_and_has_a_row() -> None:
    reference = cfg.reference()
    for section in (cfg.Config, cfg.ModuleSpec, cfg.GitSettings, cfg.Channel, cfg.Email,
                    cfg.Monitor):
        for name, declared in schema.keys(section).items():
            assert declared.metadata["doc"], name
            assert f"| `{name}` |" in reference


def test_an_empty_object_takes_every_declared_default(project: Project) -> None:
    project.module("a.py", OK)
    project.config(modules=["modules/a.py"], git={}, notify=[{"webhook": "https://x"}])
    config = cfg.load(str(project.config_path))
    [module], [channel] = config.modules or (), config.notify
    assert (module.critical, module.retries, module.retry_delay_seconds, module.enabled,
            module.on_failure, module.github_token, module.unbuffered) == (
        True, 0, 0.0, True, None, False, True)
    assert config.git == cfg.GitSettings(push="auto", remote="origin", push_retries=3)
    assert channel.on == ("failed", "partial", "interrupted", "fixed")
    assert channel.after_failures == 1
    assert channel.webhook == cfg.Webhook("https://x", ())
    assert config.schedule_grace_minutes == 60.0
