"""One writer per output: a claim file created atomically at launch, kept fresh by a
heartbeat while the run goes, released at its end.

A claim (`OUT/_claim.json` for a table, `<dir>.claim` beside a model directory)
records the run that holds the output: run id, host, pid, when it started, its
last heartbeat. It is created only if none exists:

- locally the record is written to a temporary file and hard-linked to the
  claim's name (an exclusive create that also never shows a half-written
  record; `O_CREAT | O_EXCL` where hard links are not supported);
- on GCS with the generation precondition `if_generation_match=0`, and every
  later change (heartbeat, release, take-over) is conditional on the
  generation that was read;
- on any other filesystem (s3://, ...) Beam's FileSystems offer no conditional
  create: the claim is created if absent and read back, which narrows but does
  not close the window in which two runs both believe they hold it
  (deploy/README.md, "One writer per output").

A claim whose run is gone is taken over: locally when it was made on this host
and its pid is no longer alive (or is now another process), anywhere when its
heartbeat is older than STALE_AFTER_S. The run that committed keeps nothing:
release deletes the claim only if it is still this run's. No Beam pipeline in
here; the launcher holds the claim, and the commit (wherever it runs) checks
that it still holds it (`holder`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from apache_beam.io.filesystems import FileSystems

from embedbeam.transforms.table.files import write_bytes

_LOG = logging.getLogger(__name__)

HEARTBEAT_S = 30.0  # how often a running job refreshes its claim
STALE_AFTER_S = 600.0  # a claim without a heartbeat for this long belongs to a dead run


@dataclasses.dataclass(frozen=True)
class Claim:
    """Who holds an output, as its claim file records it."""

    run_id: str
    host: str
    pid: int
    started_at: float
    heartbeat_at: float
    # The process's start time (Linux clock ticks since boot), so a reused pid is not taken
    # for the run; None where /proc does not tell.
    pid_started: int | None = None
    # The dead run whose claim this one took over, if any: its staging can go at the commit.
    took_over: str | None = None

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> Claim:
        fields = json.loads(data.decode("utf-8"))
        return cls(**{f.name: fields.get(f.name) for f in dataclasses.fields(cls)})

    def describe(self) -> str:
        """`run R (host H, pid P, since T)`, for one-line messages."""
        if not self.started_at:  # an unreadable claim: nothing more is known
            return f"run {self.run_id}"
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.started_at))
        return f"run {self.run_id} (host {self.host}, pid {self.pid}, since {since})"


# What a claim that cannot be read (being written, or damaged) is reported as.
_UNREADABLE = Claim("unknown (unreadable claim)", "unknown", 0, 0.0, 0.0)


class ClaimHeld(Exception):
    """The output is claimed by another run that is (as far as can be told) alive."""

    def __init__(self, path: str, holder: Claim) -> None:
        super().__init__(f"{path} is held by {holder.describe()}")
        self.path = path
        self.holder = holder


def new_claim(run_id: str, took_over: str | None = None) -> Claim:
    now = time.time()
    pid = os.getpid()
    return Claim(run_id, socket.gethostname(), pid, now, now, _process_start(pid), took_over)


def acquire(path: str, run_id: str) -> Claim:
    """Claims `path` for `run_id`, taking over a claim of a dead run (said in one log line).

    Raises ClaimHeld if a live run holds it.
    """
    store = _store(path)
    took_over = None
    for _ in range(3):
        claim = new_claim(run_id, took_over)
        if store.create(path, claim.to_json()):
            return claim
        read = store.read(path)
        if read is None:
            continue  # released meanwhile: try again
        data, token = read
        holder = _parse(data)
        if holder is not None and holder.run_id == run_id:
            return holder
        reason = stale_reason(holder, _age(store, path, holder))
        if reason is None:
            raise ClaimHeld(path, holder or _UNREADABLE)
        if store.delete(path, token):
            who = holder.describe() if holder else "an unreadable claim"
            _LOG.warning("taking over %s from %s: %s", path, who, reason)
            took_over = holder.run_id if holder else None
        # Deleted or not (another run may have taken it over first), try to create again.
    read = store.read(path)
    raise ClaimHeld(path, (_parse(read[0]) if read else None) or _UNREADABLE)


def holder(path: str) -> Claim | None:
    """The claim `path` holds now, or None if there is none (or it is unreadable)."""
    read = _store(path).read(path)
    return _parse(read[0]) if read else None


def refresh(path: str, run_id: str) -> bool:
    """Updates the heartbeat of `run_id`'s claim; False if the claim is no longer its."""
    store = _store(path)
    read = store.read(path)
    current = _parse(read[0]) if read else None
    if current is None or current.run_id != run_id:
        return False
    fresh = dataclasses.replace(current, heartbeat_at=time.time())
    return store.replace(path, fresh.to_json(), read[1])


def release(path: str, run_id: str) -> bool:
    """Deletes the claim if it is still `run_id`'s; True if it was."""
    store = _store(path)
    read = store.read(path)
    current = _parse(read[0]) if read else None
    if current is None or current.run_id != run_id:
        if current is not None:
            _LOG.warning("not releasing %s: it is held by %s now", path, current.describe())
        return False
    return store.delete(path, read[1])


@contextlib.contextmanager
def holding(path: str, run_id: str, heartbeat_s: float = HEARTBEAT_S) -> Iterator[Claim]:
    """Holds the claim on `path` while the block runs: acquired (or ClaimHeld), refreshed
    every `heartbeat_s` on a daemon thread, released at the end, whatever the outcome."""
    local_dir = None if "://" in path else os.path.dirname(os.path.abspath(path))
    created_dir = local_dir is not None and not os.path.exists(local_dir)
    claim = acquire(path, run_id)
    stop = threading.Event()
    beat = threading.Thread(
        target=_beat, args=(path, run_id, heartbeat_s, stop), name="claim-heartbeat", daemon=True
    )
    beat.start()
    try:
        yield claim
    finally:
        stop.set()
        beat.join()
        release(path, run_id)
        if created_dir:  # the claim made the folder and nothing else was written there
            with contextlib.suppress(OSError):
                os.rmdir(local_dir)


def _beat(path: str, run_id: str, every_s: float, stop: threading.Event) -> None:
    while not stop.wait(every_s):
        try:
            if not refresh(path, run_id):
                _LOG.warning("%s is no longer held by run %s; its commit will refuse", path, run_id)
                return
        except Exception as error:  # noqa: BLE001 - a missed heartbeat is retried at the next
            _LOG.warning("could not refresh the claim %s: %s", path, error)


def stale_reason(claim: Claim | None, age_s: float | None) -> str | None:
    """Why `claim` belongs to a dead run, or None if its run may be alive.

    `age_s` is how long ago the claim was last refreshed (its heartbeat, or the
    file's age for an unreadable one).
    """
    if claim is None:
        # Unreadable: only a crash while writing it (or a hand edit) leaves one.
        if age_s is None or age_s > STALE_AFTER_S:
            return "the claim is unreadable and old"
        return None
    if claim.host == socket.gethostname() and not _alive(claim.pid, claim.pid_started):
        return f"pid {claim.pid} is no longer running on this host"
    if age_s is not None and age_s > STALE_AFTER_S:
        return f"no heartbeat for {age_s:.0f} s"
    return None


def _age(store: _Store, path: str, claim: Claim | None) -> float | None:
    if claim is not None:
        return time.time() - claim.heartbeat_at
    return store.age(path)


def _parse(data: bytes) -> Claim | None:
    try:
        return Claim.from_json(data)
    except (ValueError, TypeError, UnicodeDecodeError):
        return None


def _process_start(pid: int) -> int | None:
    """The start time of process `pid` in clock ticks since boot (Linux), else None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(b")") + 2 :].split()
    if fields[0] == b"Z":  # a zombie: killed, not yet reaped
        return -1
    return int(fields[19])


def _alive(pid: int, started: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    now_started = _process_start(pid)
    if now_started == -1:
        return False
    return started is None or now_started is None or now_started == started


class _Store:
    """Conditional operations on one small file; `token` identifies what was read."""

    def create(self, path: str, data: bytes) -> bool:
        raise NotImplementedError

    def read(self, path: str) -> tuple[bytes, Any] | None:
        raise NotImplementedError

    def replace(self, path: str, data: bytes, token: Any) -> bool:
        raise NotImplementedError

    def delete(self, path: str, token: Any) -> bool:
        raise NotImplementedError

    def age(self, path: str) -> float | None:
        return None

    def _unchanged(self, path: str, token: Any) -> bool:
        """Whether `path` still holds what was read with `token`."""
        read = self.read(path)
        return read is not None and read[1] == token


class _LocalStore(_Store):
    """Exclusive create by hard link (or O_EXCL); changes only to the content that was read."""

    def create(self, path: str, data: bytes) -> bool:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        temporary = self._write_temporary(path, data)
        try:
            os.link(temporary, path)
            return True
        except FileExistsError:
            return False
        except OSError:  # no hard links on this filesystem
            return self._create_exclusive(path, data)
        finally:
            os.unlink(temporary)

    @staticmethod
    def _create_exclusive(path: str, data: bytes) -> bool:
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return True

    def read(self, path: str) -> tuple[bytes, bytes] | None:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return None
        return data, data

    def replace(self, path: str, data: bytes, token: bytes) -> bool:
        if not self._unchanged(path, token):
            return False
        os.replace(self._write_temporary(path, data), path)
        return True

    def delete(self, path: str, token: bytes) -> bool:
        # Moved aside first, so that what is deleted is exactly what was checked.
        aside = f"{path}.{uuid.uuid4().hex}.deleting"
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return False
        try:
            with open(aside, "rb") as handle:
                if handle.read() == token:
                    return True
            # Another run's claim was moved aside: put it back unless a new one exists.
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
            return False
        finally:
            os.unlink(aside)

    def age(self, path: str) -> float | None:
        try:
            return time.time() - os.stat(path).st_mtime
        except FileNotFoundError:
            return None

    @staticmethod
    def _write_temporary(path: str, data: bytes) -> str:
        temporary = f"{path}.{uuid.uuid4().hex}.tmp"
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return temporary


class _GcsStore(_Store):
    """Generation preconditions: create only if absent, change only the generation read."""

    def __init__(self) -> None:
        from apache_beam.io.gcp import gcsio

        self._client = gcsio.GcsIO().client
        self._parse_path = gcsio.parse_gcs_path

    def _blob(self, path: str):
        bucket, name = self._parse_path(path)
        return self._client.bucket(bucket).blob(name)

    def create(self, path: str, data: bytes) -> bool:
        return self._upload(path, data, 0)

    def read(self, path: str) -> tuple[bytes, int] | None:
        from google.api_core.exceptions import NotFound

        bucket, name = self._parse_path(path)
        blob = self._client.bucket(bucket).get_blob(name)
        if blob is None:
            return None
        try:
            return blob.download_as_bytes(if_generation_match=blob.generation), blob.generation
        except NotFound:
            return None

    def replace(self, path: str, data: bytes, token: int) -> bool:
        return self._upload(path, data, token)

    def delete(self, path: str, token: int) -> bool:
        from google.api_core.exceptions import NotFound, PreconditionFailed

        try:
            self._blob(path).delete(if_generation_match=token)
        except (NotFound, PreconditionFailed):
            return False
        return True

    def _upload(self, path: str, data: bytes, generation: int) -> bool:
        from google.api_core.exceptions import PreconditionFailed

        try:
            self._blob(path).upload_from_string(
                data, content_type="application/json", if_generation_match=generation
            )
        except PreconditionFailed:
            return False
        return True


class _BestEffortStore(_Store):
    """Beam's FileSystems, which have no conditional create: check, write, read back."""

    def create(self, path: str, data: bytes) -> bool:
        if FileSystems.exists(path):
            return False
        write_bytes(path, data)
        read = self.read(path)
        return read is not None and read[0] == data

    def read(self, path: str) -> tuple[bytes, bytes] | None:
        if not FileSystems.exists(path):
            return None
        try:
            with FileSystems.open(path) as handle:
                data = handle.read()
        except OSError:
            return None
        return data, data

    def replace(self, path: str, data: bytes, token: bytes) -> bool:
        if not self._unchanged(path, token):
            return False
        write_bytes(path, data)
        return True

    def delete(self, path: str, token: bytes) -> bool:
        if not self._unchanged(path, token):
            return False
        FileSystems.delete([path])
        return True


def _store(path: str) -> _Store:
    if "://" not in path:
        return _LocalStore()
    if path.startswith("gs://"):
        return _GcsStore()
    return _BestEffortStore()
