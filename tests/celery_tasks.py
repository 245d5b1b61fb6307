"""The Celery app of tests/test_contrib_celery.py, imported by real worker processes.

Settings come from the environment the test gives the workers: PYMYSQLLOCK_CELERY_DIR (the
filesystem broker's folders and the journal) and PYMYSQLLOCK_CELERY_CONNECT (JSON connect
arguments of the test server). Each task appends ``event key pid time`` lines to the journal.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from celery import Celery
from kombu.transport import filesystem
from kombu.utils.json import dumps

from PyMySQLLock import Locker
from PyMySQLLock.contrib.celery import LockedTask

BASE = Path(os.environ["PYMYSQLLOCK_CELERY_DIR"])
JOURNAL = BASE / "journal.txt"


def _put_whole(self: filesystem.Channel, queue: str, payload: Any, **kwargs: Any) -> None:
    """kombu's filesystem ``_put``, but the message appears in the queue folder complete.

    kombu creates the message file under its final name and writes it after: a worker polling
    the folder in between moves it away and reads it empty, and the JSONDecodeError ends the
    worker (seen in CI). Here the file is written under a name no queue matches, then renamed
    (atomic within one folder); the final name has kombu's form, so the order is kept.
    """
    name = f"{round(time.monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
    staged = os.path.join(self.data_folder_out, f".staged-{uuid.uuid4()}")
    with open(staged, "wb") as staging:
        staging.write(dumps(payload).encode())
    os.rename(staged, os.path.join(self.data_folder_out, name))


filesystem.Channel._put = _put_whole

app = Celery("celery_tasks")
app.conf.update(
    broker_url="filesystem://",
    broker_transport_options={
        "data_folder_in": str(BASE / "queue"),
        "data_folder_out": str(BASE / "queue"),
        "processed_folder": str(BASE / "processed"),
        # kombu's default is ./control: the broadcast tables would land in the checkout.
        "control_folder": str(BASE / "control"),
        "polling_interval": 0.05,
    },
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=1,
)

# Made at import, as an application does: lazy, so importing touches no server.
locker = Locker(lazy=True, **json.loads(os.environ["PYMYSQLLOCK_CELERY_CONNECT"]))


def note(event: str, key: str) -> None:
    with JOURNAL.open("a") as journal:
        journal.write(f"{event} {key} {os.getpid()} {time.time():.6f}\n")


@app.task(base=LockedTask, locker=locker, lock_key=lambda key, seconds: key, lock_on_busy="wait")
def work(key: str, seconds: float) -> None:
    note("start", key)
    time.sleep(seconds)
    note("end", key)


@app.task(base=LockedTask, locker=locker, lock_key=lambda key, seconds: key, lock_on_busy="skip")
def hold(key: str, seconds: float) -> None:
    note("holding", key)
    time.sleep(seconds)  # the first run sleeps until the test kills its worker


@app.task(base=LockedTask, locker=locker, lock_key=lambda key: key, lock_on_busy="skip")
def once(key: str) -> None:
    note("once", key)
