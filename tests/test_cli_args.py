"""The command line's argument order, as flock(1) and the mysql client read theirs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CLI

from PyMySQLLock import cli

ROOT = Path(__file__).resolve().parent.parent


def _parsed(*argv):
    return cli.parse_args(list(argv))


@pytest.mark.parametrize(
    ("argv", "name", "command"),
    [
        (["run", "job", "--", "true"], "job", ["true"]),
        (["run", "job", "date", "-u"], "job", ["date", "-u"]),
        (["run", "-w", "5", "job", "echo", "x", "--url", "U"], "job", ["echo", "x", "--url", "U"]),
        (["run", "job", "-w", "5", "--", "cmd", "a"], "job", ["cmd", "a"]),  # the 1.0 form
        (["run", "-n", "job", "git", "log", "--", "f"], "job", ["git", "log", "--", "f"]),
        (["run", "--", "-odd", "cmd"], "-odd", ["cmd"]),
        (["run", "job", "mysqldump", "-pX", "-h"], "job", ["mysqldump", "-pX", "-h"]),
    ],
)
def test_run_options_end_at_the_name(argv, name, command):
    args = _parsed(*argv)
    assert args.name == name
    assert args.command == command
    assert args.password is None


def test_connection_options_before_or_after_the_command():
    for argv in (
        ["--url", "mysql://u@h/d", "run", "job", "true"],
        ["run", "--url", "mysql://u@h/d", "job", "true"],
        ["-u", "u", "--url", "mysql://u@h/d", "-v", "run", "job", "true"],
    ):
        args = _parsed(*argv)
        assert args.url == "mysql://u@h/d"
        assert args.command == ["true"]
    assert _parsed("-h", "db", "-P", "3307", "status", "job").host == "db"
    assert _parsed("status", "-h", "db", "job").host == "db"
    assert _parsed("-h", "db", "fencing", "init").host == "db"
    assert _parsed("-v", "run", "job", "true").verbose == 1


def test_password_flags_are_ours_only_before_the_command():
    assert _parsed("run", "-pS", "job", "x").password == "S"
    assert _parsed("run", "-p", "job", "x").password_prompt is True
    assert _parsed("--password", "run", "job", "x").password_prompt is True
    assert _parsed("run", "job", "mysql", "-pS").command == ["mysql", "-pS"]


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "-w", "5", "-u", "app", "--url", "mysql://u@h/d", "job", "--", "true"],
        ["list", "--prefix", "p", "--json", "-S", "/tmp/s"],
        ["status", "-P", "3307", "job"],
        ["release", "--force", "job"],
        ["fencing", "init", "--table", "db.t"],
        ["demo", "--workers", "3"],
    ],
)
def test_a_parser_built_for_one_command_reads_it_as_the_full_one(argv):
    """parse_args builds only the options of the command the line starts with."""
    tokens, _ = cli.split_command_line(argv, cli._value_options(cli.build_parser()))
    assert vars(cli.build_parser(argv[0]).parse_args(tokens)) == vars(
        cli.build_parser().parse_args(tokens)
    )


@pytest.mark.parametrize("argv", [["-h"], ["run", "-h"], ["status", "-h"], ["--help"]])
def test_dash_h_alone_is_help(argv, capsys):
    assert cli.main(argv) == 0
    assert "usage: pymysqllock" in capsys.readouterr().out


def test_the_help_width_is_looked_up_once_and_used(monkeypatch, capsys):
    # argparse makes a formatter for every option; each asked for the width.
    asked = []
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(
        cli.os, "get_terminal_size", lambda fd: asked.append(fd) or os.terminal_size((52, 24))
    )
    cli._terminal_width.cache_clear()
    try:
        assert cli.main(["run", "--help"]) == 0
    finally:
        cli._terminal_width.cache_clear()
    assert len(asked) == 1
    # The options argparse lays out (the other sections are written as they are shown).
    options = re.search(
        r"\n(options|optional arguments):\n(.*?)\n\n", capsys.readouterr().out, re.S
    )
    assert options is not None
    assert max(map(len, options.group(2).splitlines())) <= 50


def test_run_without_a_command_is_a_usage_error(capsys):
    assert cli.main(["run", "job"]) == cli.EXIT_USAGE
    assert "needs a command" in capsys.readouterr().err


def test_url_before_the_command_runs_it(server, lock_name):
    result = subprocess.run(
        [*CLI, "--url", server.url, "run", lock_name, "sh", "-c", 'echo "$PYMYSQLLOCK_LOCK_NAME"'],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == lock_name


def test_the_documented_crontab_line_runs_under_cron(server, tmp_path, lock_name):
    """docs/cli.rst's crontab line, run as cron runs it: /bin/sh -c with PATH=/usr/bin:/bin,
    ``\\%`` turned back into ``%``, and the paths and URL pointed at this test's."""
    text = (ROOT / "docs" / "cli.rst").read_text()
    line = next(ln.strip() for ln in text.splitlines() if ln.strip().startswith("0 2 * * *"))
    command = line.split(None, 5)[5]
    assert "\\%" in command
    assert "%" not in command.replace("\\%", "")  # every % of the line is escaped
    job = tmp_path / "nightly"
    out = tmp_path / "out"
    job.write_text(f'#!/bin/sh\necho "$PYMYSQLLOCK_LOCK_NAME $*" > {out}\n')
    job.chmod(0o755)
    script = shutil.which("pymysqllock", path=str(Path(sys.executable).parent))
    assert script, "the pymysqllock console script is installed next to the interpreter"
    command = command.replace("\\%", "%").replace("/opt/bin/nightly", str(job))
    command = command.replace("/opt/app/venv/bin/pymysqllock", script)
    command = re.sub(r"PYMYSQLLOCK_URL=\S+", f"PYMYSQLLOCK_URL={server.url}", command)
    command = command.replace(" nightly ", f" {lock_name} ")
    result = subprocess.run(
        ["/bin/sh", "-c", command],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SHELL": "/bin/sh"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    name, _, rest = out.read_text().strip().partition(" ")
    assert name == lock_name
    assert re.fullmatch(r"--date \d{4}-\d\d-\d\d", rest)


def test_run_true_imports_only_what_it_needs():
    """``pymysqllock run NAME -- true`` is a cron wrapper: no framework, no sandbox, no demo."""
    code = (
        "import sys\n"
        "from PyMySQLLock import cli\n"
        "cli.parse_args(['run', 'n', '--', 'true'])\n"
        "heavy = [m for m in ('sqlalchemy', 'django', 'celery', 'PyMySQLLock.demo',"
        " 'PyMySQLLock.testing', 'PyMySQLLock.contrib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, env=env)
