"""The Django integration against the test server, with a real settings module."""

from __future__ import annotations

import io
import os
import sys

import pytest

pytest.importorskip("django", reason="Django comes with the test extra")

from PyMySQLLock import InvalidArgumentError, LockTimeoutError

SETTINGS_MODULE = "pymysqllock_django_test_settings"


@pytest.fixture(scope="module")
def django_settings(server, tmp_path_factory):
    """A settings module on disk, as a project has it: aliases for each way Django reads them.

    Django's settings can be set up once per process, so the whole module shares them.
    """
    import django
    from django.conf import settings

    if settings.configured:
        pytest.fail("Django settings were configured by another test module", pytrace=False)
    base = tmp_path_factory.mktemp("django")
    option_file = base / "my.cnf"
    option_file.write_text(
        f"[client]\nhost = {server.host}\nport = {server.port}\nuser = {server.user}\n"
        + (f"password = {server.password}\n" if server.password else "")
        + f"database = {server.database}\n"
    )
    option_file.chmod(0o600)
    common = {"NAME": server.database, "USER": server.user, "PASSWORD": server.password}
    databases = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            **common,
            "HOST": server.host,
            "PORT": str(server.port),  # a string, as in most settings files
            "OPTIONS": {"charset": "utf8mb4", "init_command": "SET @pymysqllock_probe = 7"},
        },
        "optionfile": {
            "ENGINE": "django.db.backends.mysql",
            "OPTIONS": {"read_default_file": str(option_file)},
        },
        "sqlite": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    }
    if getattr(server, "socket", None):
        databases["socket"] = {
            "ENGINE": "django.db.backends.mysql",
            **common,
            "HOST": server.socket,
        }
    (base / f"{SETTINGS_MODULE}.py").write_text(
        'SECRET_KEY = "not-secret"\n'
        "USE_TZ = True\n"
        'INSTALLED_APPS = ["PyMySQLLock.contrib.django"]\n'
        f"DATABASES = {databases!r}\n"
    )
    sys.path.insert(0, str(base))
    saved = os.environ.get("DJANGO_SETTINGS_MODULE")
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    django.setup()
    yield settings
    sys.path.remove(str(base))
    if saved is None:
        os.environ.pop("DJANGO_SETTINGS_MODULE", None)
    else:
        os.environ["DJANGO_SETTINGS_MODULE"] = saved


@pytest.fixture
def integration(django_settings):
    from django.db import connections

    from PyMySQLLock.contrib import django as integration

    yield integration
    integration.close_lockers()
    connections.close_all()


def test_the_string_port_and_options_reach_the_locker(integration, server, lock_name):
    locker = integration.get_locker()
    assert locker is integration.get_locker("default")  # one per process and alias
    assert locker.driver.name == "MySQLdb"  # Django's MySQL backend's own driver
    with locker.lock(lock_name, timeout=5):
        assert locker.is_locked(lock_name)
    assert locker._admin("SELECT @pymysqllock_probe", ()) == [(7,)]  # OPTIONS init_command


def test_read_default_file_is_read_as_django_reads_it(integration, lock_name):
    locker = integration.get_locker("optionfile")
    with locker.lock(lock_name, timeout=5):
        assert locker.holder(lock_name) is not None


def test_a_socket_path_in_host(integration, server, lock_name):
    if not getattr(server, "socket", None):
        pytest.skip("the session server is external: no socket path known")
    _, params = integration.connect_arguments("socket")
    assert params["unix_socket"] == server.socket
    assert "host" not in params
    locker = integration.get_locker("socket")
    with locker.lock(lock_name, timeout=5):
        assert integration.get_locker("default").is_locked(lock_name)  # the same server


def test_a_database_that_is_not_mysql_is_refused(integration):
    with pytest.raises(InvalidArgumentError, match="sqlite"):
        integration.get_locker("sqlite")


def test_the_locker_is_made_lazily_from_settings(integration, server_traffic):
    with server_traffic() as traffic:
        integration.get_locker()
    assert traffic.connections == 0


def test_locked_skips_waits_or_raises_when_busy(integration, lock_name):
    calls = []

    @integration.locked(lock_name)
    def job(value):
        calls.append(value)
        return value * 2

    @integration.locked(lock_name, on_busy="raise")
    def strict_job():
        calls.append("strict")

    @integration.locked(lock_name, on_busy="wait", timeout=0.2)
    def patient_job():
        calls.append("patient")

    assert job(21) == 42
    other = integration.get_locker("optionfile")  # another Locker: another session
    held = other.lock(lock_name)
    assert held.acquire(0)
    try:
        assert job(1) is None
        with pytest.raises(LockTimeoutError, match="held by connection"):
            strict_job()
        with pytest.raises(LockTimeoutError):
            patient_job()
    finally:
        held.release()
    assert calls == [21]


def test_locked_names_the_lock_after_the_function(integration):
    from django.core.management import call_command
    from django.core.management.base import BaseCommand

    seen = []

    class Command(BaseCommand):
        @integration.locked()
        def handle(self, *args, **options):
            function = type(self).handle
            name = f"{function.__module__}.{function.__qualname__}"
            assert name.endswith(
                "test_locked_names_the_lock_after_the_function.<locals>.Command.handle"
            )
            seen.append(integration.get_locker().is_locked(name))
            self.stdout.write("ran")

    output = io.StringIO()
    call_command(Command(), stdout=output)
    assert seen == [True]
    assert output.getvalue() == "ran\n"


def test_an_unknown_on_busy_is_refused(integration):
    with pytest.raises(InvalidArgumentError, match="on_busy"):
        integration.locked(on_busy="later")
    with pytest.raises(InvalidArgumentError, match="hold_at_least"):
        integration.locked(hold_at_least=-1)


def test_locked_with_a_minimum_hold_skips_a_repeated_run(integration, lock_name, sql):
    calls = []

    @integration.locked(lock_name, hold_at_least=600)
    def job():
        calls.append("ran")

    job()  # returns at once; the lock stays held
    assert sql("SELECT IS_USED_LOCK(%s)", (lock_name,))[0][0] is not None
    job()  # skipped: the first run's hold goes on
    assert calls == ["ran"]
    integration.close_lockers()  # ends the hold
    assert sql("SELECT IS_USED_LOCK(%s)", (lock_name,))[0][0] is None


def test_management_command_list_status_release(integration, lock_name):
    from django.core.management import CommandError, call_command

    holder = integration.get_locker("optionfile")
    held = holder.lock(lock_name)
    assert held.acquire(0)
    holder_id = held.connection_id

    def run(*args):
        output = io.StringIO()
        call_command("pymysqllock", *args, stdout=output)
        return output.getvalue()

    assert lock_name in run("list", "--prefix", lock_name)
    with pytest.raises(CommandError, match="held") as busy:
        run("status", lock_name)
    assert busy.value.returncode == 1
    with pytest.raises(CommandError, match="--force"):
        run("release", lock_name)
    assert f"ended connection {holder_id}" in run("release", "--force", lock_name)
    assert "free" in run("--database", "optionfile", "status", lock_name)
    held.release()  # finds the loss; cleans up
    assert held.lost


def test_the_documented_settings_and_command_run(integration, lock_name):
    """docs/integrations.rst: the settings block says what the fixture's settings module says
    (but for the test server's address), and its command runs under its lock."""
    from django.core.management import call_command
    from test_docs_examples import PLACEHOLDERS, ROOT, extract

    blocks = [e.code for e in extract(ROOT / "docs" / "integrations.rst") if "django" in e.code]
    settings_block = next(code for code in blocks if "DATABASES" in code)
    command_block = next(code for code in blocks if "class Command" in code)
    documented: dict = {}
    exec(compile(settings_block, "integrations.rst", "exec"), documented)  # noqa: S102
    default = documented["DATABASES"]["default"]
    assert documented["INSTALLED_APPS"] == ["PyMySQLLock.contrib.django"]
    assert default["ENGINE"] == "django.db.backends.mysql"
    assert isinstance(default["PORT"], str)
    assert {default["HOST"], default["USER"], default["PASSWORD"], default["NAME"]} == set(
        PLACEHOLDERS.values()
    )
    module: dict = {"__name__": "send_reminders"}
    exec(compile(command_block, "integrations.rst", "exec"), module)  # noqa: S102
    output = io.StringIO()
    call_command(module["Command"](), stdout=output)
    assert output.getvalue() == "sending reminders\n"
    other = integration.get_locker("optionfile")
    with other.lock("send-reminders", timeout=0):
        output = io.StringIO()
        call_command(module["Command"](), stdout=output)
        assert output.getvalue() == ""  # skipped: another process holds it
