"""Who runs a run: this process's name in the store, and whether a named process is gone.

A worker name is ``host:pid:nonce``. Host and pid are for people; the nonce makes the name
unique even across machines that share a host name (cloned VMs, containers) and across pid
reuse, so that no two processes ever hold a lease under one name.

Liveness is the lease's to decide (a process that stops renewing loses its run when the
lease expires), with one shortcut that is never wrong: on Linux the nonce is made of a
hash of the kernel's boot id, the pid namespace and the pid (the *place*), then a hash of
the process's start time. A process that finds the same place in a name can tell for
sure that the named process is gone: its pid is free, or now belongs to a process started
at another time. A name from anywhere else (another machine, another container, a system
without /proc) gives no shortcut: only its lease can tell.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket

__all__ = ["WORKER", "process_gone"]


def _read(path: str) -> str | None:
    try:
        with open(path) as file:
            return file.read().strip()
    except OSError:
        return None


def _namespace() -> str | None:
    """This kernel boot and pid namespace, or None where they cannot be read."""
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        pid_namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{boot}/{pid_namespace}" if boot else None


_NAMESPACE = _namespace()


def _start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot), or None if there is none."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    # The command name (field 2) may hold spaces and parentheses: count after its end.
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def _hash(text: str, size: int) -> str:
    return hashlib.blake2b(text.encode(), digest_size=size).hexdigest()


def _place(pid: int) -> str:
    """The part of a nonce that says where process ``pid`` of this namespace ran."""
    return _hash(f"{_NAMESPACE}/{pid}", 6)


def _nonce(pid: int) -> str:
    started = _start_time(pid)
    if _NAMESPACE is None or started is None:
        return "r" + secrets.token_hex(8)  # unique, and never a place: the lease decides
    return _place(pid) + _hash(f"{_NAMESPACE}/{pid}/{started}", 4)


WORKER = f"{socket.gethostname()}:{os.getpid()}:{_nonce(os.getpid())}"
"""This process's name as the holder of a run's lease."""


def process_gone(worker: str | None) -> bool:
    """True only if the process named ``worker`` is known for sure to have ended (it ran
    here, in this boot and pid namespace, and its pid is free or reused); False when it
    is alive, and when this process cannot tell (then the lease decides)."""
    if _NAMESPACE is None or not worker or worker.count(":") < 2:
        return False
    _, pid_text, nonce = worker.rsplit(":", 2)
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if nonce[:12] != _place(pid):
        return False  # another machine's or container's process: only its lease can tell
    return _nonce(pid) != nonce
