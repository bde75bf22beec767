"""Exclusive claims on run directories: one attempt writes a run; any other waits or leaves.

Before a run directory is read for resuming, cleared or written, its attempt creates
``<runs>/<job>/<run_id>.claim`` with ``O_CREAT | O_EXCL``: of any number of processes, on any
number of hosts sharing the folder, exactly one creates it (exclusive create is atomic on local
filesystems and on NFSv3+; no ``flock``, which network filesystems do not all honour). The file
holds the owner's pid, host, machine identity, a random token and a heartbeat that the owner
rewrites through its open descriptor every few seconds.

A claim is *abandoned*, and may be broken, when its owner is provably gone: on the same machine
(same host name, boot and pid namespace) when its process no longer exists (pid and start time),
elsewhere when its heartbeat is more than :data:`ABANDONED_SECONDS` away from this machine's
clock, in the past or in the future (no live owner beats from the future: the machines' clocks
agree within that much, or no heartbeat could be judged at all). Breakers take turns: each
first creates ``.<run_id>.claim.break`` with ``O_EXCL`` and writes its own pid, host and machine
into it, reads the claim again and, only if it is still the very file judged abandoned and the
turn is still its own, renames it aside; then it competes for a fresh ``O_EXCL`` create like
everyone else. Without the turn, a breaker that judged the old claim could move aside the fresh
claim of a faster breaker, and a third attempt could create one in the gap: two writers. Nothing
else removes a claim but its owner, so while a breaker holds its turn the file it re-read cannot
change under it.

A turn is held for microseconds; one left by a breaker that died holding it is *stale* and is
moved aside like an abandoned claim: at once when its breaker was a process of this machine that
is gone; when it is not a regular file (a folder, a FIFO, a symbolic link: a breaker makes none
of those); otherwise when its mtime is more than :data:`BREAK_TURN_SECONDS` away from now, either
way. Whatever sits at a claim's or a turn's name is renamed aside under a hidden name (a link is
never followed) and then unlinked, or removed if it is an empty folder; a folder that is not
empty stays aside, hidden, never deleted recursively.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from mnist_suite.errors import SuiteError

SUFFIX = ".claim"
ABANDONED_SECONDS = 120.0  # a foreign owner silent for this long is presumed dead
MAX_CLAIM_BYTES = 4096
BREAK_TURN_SECONDS = 10.0  # a breaker's turn older than this was left by a dead breaker


def claim_path(run_dir: Path) -> Path:
    """Where the claim on ``run_dir`` lives: beside it, so clearing the run keeps the claim."""
    run_dir = Path(run_dir)
    return run_dir.with_name(run_dir.name + SUFFIX)


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> str:
    """Start time of process ``pid`` in clock ticks since boot ("" if unknown): pid reuse guard."""
    stat = _read_text(f"/proc/{pid}/stat")
    fields = stat.rpartition(")")[2].split()  # after "(comm)", which may contain spaces
    return fields[19] if len(fields) > 19 else ""


def machine() -> dict:
    """What makes two pids comparable: host name, boot and pid namespace."""
    try:
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pidns = ""
    return {
        "host": socket.gethostname(),
        "boot_id": _read_text("/proc/sys/kernel/random/boot_id"),
        "pidns": pidns,
    }


def process_alive(pid: object, start: object = None) -> bool:
    """Does process ``pid`` of this machine exist (and, given ``start``, is it the same one)?

    Anything that is not a positive int, or too large to be a pid, names no process.
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    fields = _read_text(f"/proc/{pid}/stat").rpartition(")")[2].split()  # after "(comm)"
    if fields and fields[0] == "Z":
        return False  # exited, not yet reaped by its parent
    ticks = fields[19] if start and len(fields) > 19 else None
    return not (start and ticks and ticks != start)  # a new process got the old pid


@dataclass(frozen=True)
class Holder:
    """A claim as found on disk."""

    info: dict  # the owner's fields ({} while the creator is still writing them)
    heartbeat: float  # unix time of the last beat (the file's mtime if newer or no content)
    identity: tuple  # (inode, mtime_ns, token): to tell this claim from a newer one

    def abandoned(self, now: float | None = None, silence: float = ABANDONED_SECONDS) -> bool:
        """Is the owner provably gone? Elsewhere: is its heartbeat more than ``silence``
        seconds from now, either way (a future mtime is no sign of life)?"""
        mine = machine()
        info = self.info
        if info and all(info.get(k) == v for k, v in mine.items()):
            return not process_alive(info.get("pid"), info.get("start"))
        now = time.time() if now is None else now
        return abs(now - self.heartbeat) > silence

    def describe(self) -> str:
        age = max(0.0, time.time() - self.heartbeat)
        who = f"pid {self.info.get('pid', '?')} on {self.info.get('host', '?')}"
        return f"{who} (heartbeat {age:.0f} s ago)"


def read_holder(path: Path) -> Holder | None:
    """The claim at ``path``, or None if there is none.

    Only a regular file can be a claim (``_create`` makes nothing else): a symlink (dangling or
    not), a folder or a FIFO found there has no owner and reads as abandoned at once.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError:
        return Holder({}, time.time(), ("?",))  # cannot even look: an unknown, live owner
    if not stat.S_ISREG(st.st_mode):
        return Holder({}, 0.0, ("special", st.st_ino, st.st_mtime_ns))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError:
        # A regular file we may not read (another user's claim): an unknown owner, judged alive
        # while its file is fresh, so the run is never clobbered by mistake.
        return Holder({}, st.st_mtime, (st.st_ino, st.st_mtime_ns, None))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped in since the lstat
            return Holder({}, 0.0, ("special", st.st_ino, st.st_mtime_ns))
        raw = os.pread(fd, MAX_CLAIM_BYTES, 0)
    finally:
        os.close(fd)
    try:
        info = json.loads(raw)
    except ValueError:
        info = None
    if not isinstance(info, dict):
        info = {}  # being written, or foreign: judged by its mtime alone
    beat = info.get("heartbeat_unix")
    beat = beat if isinstance(beat, int | float) and not isinstance(beat, bool) else 0.0
    return Holder(info, max(beat, st.st_mtime), (st.st_ino, st.st_mtime_ns, info.get("token")))


class ClaimBusy(SuiteError):
    """Another live attempt holds the run."""

    def __init__(self, path: Path, holder: Holder):
        super().__init__(f"{path}: claimed by {holder.describe()}")
        self.holder = holder


class Claim:
    """A held claim; :meth:`beat` refreshes it, :meth:`release` gives it up."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self.fd = fd
        self.info = {
            **machine(),
            "pid": os.getpid(),
            "start": _start_ticks(os.getpid()),
            "token": secrets.token_hex(8),
            "created_unix": time.time(),
        }

    def beat(self) -> None:
        """Rewrite the heartbeat through our own descriptor.

        Writing through the descriptor (not the path) means a beat can only ever touch our own
        claim, even if it was broken and replaced meanwhile.
        """
        data = json.dumps({**self.info, "heartbeat_unix": time.time()}).encode()
        os.pwrite(self.fd, data, 0)
        os.ftruncate(self.fd, len(data))

    def held(self) -> bool:
        """Is the file at our path still ours (not broken and replaced)?"""
        try:
            return os.stat(self.path).st_ino == os.fstat(self.fd).st_ino
        except OSError:
            return False

    def release(self) -> None:
        if self.fd < 0:
            return
        try:
            if self.held():
                os.unlink(self.path)
        except OSError:
            pass  # left behind, it is abandoned as soon as our pid is gone
        finally:
            os.close(self.fd)
            self.fd = -1


def _create(path: Path) -> Claim | None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return None
    claim = Claim(path, fd)
    try:
        claim.beat()
    except OSError:
        claim.release()
        raise
    return claim


def _remove(path: Path) -> None:
    """Unlink ``path`` (a link itself, never its target), or remove it if it is an empty folder;
    a folder that is not empty stays, hidden by its dot: nothing is deleted recursively."""
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink()


def _move_aside(path: Path, why: str) -> None:
    """Rename ``path`` to a hidden name beside it and remove it there (:func:`_remove`).

    A dot name: whatever cannot be removed is never listed as a run.
    """
    aside = path.with_name(f".{path.name}.{why}-{secrets.token_hex(6)}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # moved or released by someone else meanwhile
    _remove(aside)


def _take_turn(turn: Path) -> int | None:
    """Create the breakers' turn, naming this process in it; None if another holds it."""
    try:
        fd = os.open(turn, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return None
    try:
        owner = {**machine(), "pid": os.getpid(), "start": _start_ticks(os.getpid())}
        os.write(fd, json.dumps(owner).encode())
    except OSError:
        _release_turn(turn, fd)
        raise
    return fd


def _ours(turn: Path, fd: int) -> bool:
    """Is the file at ``turn`` still the one ``fd`` holds (not moved aside as stale)?"""
    try:
        return os.lstat(turn).st_ino == os.fstat(fd).st_ino
    except OSError:
        return False


def _release_turn(turn: Path, fd: int) -> None:
    try:
        if _ours(turn, fd):  # a turn moved aside meanwhile is another breaker's now
            turn.unlink()
    except OSError:
        pass  # left behind, it is stale as soon as our pid is gone
    finally:
        os.close(fd)


def _break(path: Path, abandoned: Holder) -> None:
    """In this attempt's turn, move the claim aside if it is still ``abandoned``'s."""
    turn = path.with_name(f".{path.name}.break")
    fd = _take_turn(turn)
    if fd is None:
        other = read_holder(turn)
        if other is not None and other.abandoned(silence=BREAK_TURN_SECONDS):
            # Its breaker died holding it, or it is no breaker's: moved aside, taken next poll.
            # Should a fresh turn have replaced it meanwhile, that breaker finds its turn gone
            # (_ours) and moves nothing.
            _move_aside(turn, "stale")
        return  # another breaker's turn: judge again on the next poll
    try:
        now = read_holder(path)
        if now is None or now.identity != abandoned.identity:
            return  # released, or already broken and claimed afresh: judge again
        if not _ours(turn, fd):
            return  # judged stale and moved aside by another breaker: not our turn any more
        _move_aside(path, "abandoned")
    finally:
        _release_turn(turn, fd)


def acquire(path: Path, wait: float = 0.0, poll: float = 0.2) -> Claim:
    """Claim ``path`` (see :func:`claim_path`), waiting up to ``wait`` seconds for a live owner.

    Raises
    ------
    ClaimBusy
        A live owner still holds it after ``wait`` seconds.
    OSError
        The claim cannot be created (folder missing or read-only, disk full).
    """
    path = Path(path)
    deadline = time.monotonic() + wait
    breaks = 0
    while True:
        claim = _create(path)
        if claim is not None:
            return claim
        holder = read_holder(path)
        if holder is None:
            continue  # released between our create and our read
        # Abandonment is judged on every poll of the wait: an owner that dies while we wait is
        # noticed then. Twenty breaks in a row (others racing us) earn one poll's pause.
        if holder.abandoned():
            _break(path, holder)
            breaks += 1
            if breaks % 20:
                continue
        if time.monotonic() >= deadline:
            if not holder.info:  # caught between its create and its first write: name the owner
                time.sleep(0.05)
                holder = read_holder(path) or holder
            raise ClaimBusy(path.with_name(path.name[: -len(SUFFIX)]), holder)
        time.sleep(poll)


def live_holder(run_dir: Path) -> Holder | None:
    """The live claim on ``run_dir``, if an attempt is writing it right now."""
    holder = read_holder(claim_path(run_dir))
    return holder if holder is not None and not holder.abandoned() else None
