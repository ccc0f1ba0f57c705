"""Whether a thread of the kernel is blocked waiting for its standard input, read off
/proc: a read of the pipe, or a poll, select or epoll wait that has the pipe among the
files it waits to read (runtimes with an event loop — Racket, SBCL, Crystal — wait there
and read only once the pipe has something)."""

import os
import platform

# Syscall numbers: read, pread64, readv, preadv, preadv2 | poll, ppoll | select,
# pselect6 | epoll_wait, epoll_pwait, epoll_pwait2.
_CALLS = {
    "x86_64": {"read": {0, 17, 19, 295, 327}, "poll": {7, 271}, "select": {23, 270},
               "epoll": {232, 281, 441}},
    "aarch64": {"read": {63, 65, 67, 69, 286}, "poll": {73}, "select": {72},
                "epoll": {22, 441}},
}
CALLS = _CALLS.get(platform.machine(), {})
MAX_POLLED = 4096  # pollfds read off a waiting process; a runtime polls a handful
MAX_SELECT_FDS = 65536
POLLIN = EPOLLIN = 0x1


def supported():
    return bool(CALLS)


def waits_for(pid, tid, pipe_link):
    """Whether thread `tid` of process `pid` is blocked until the pipe named
    `pipe_link` (a readlink of an fd of it: `pipe:[inode]`) can be read."""
    call = _blocked_in(pid, tid)
    if call is None:
        return False
    number, args = call
    try:
        if number in CALLS["read"]:
            return _watches(pid, args[0], pipe_link, depth=0)
        if number in CALLS["poll"]:
            return any(_watches(pid, fd, pipe_link) for fd in _polled(pid, *args[:2]))
        if number in CALLS["select"]:
            return any(_watches(pid, fd, pipe_link) for fd in _selected(pid, *args[:2]))
        if number in CALLS["epoll"]:
            return _watches(pid, args[0], pipe_link)
    except (OSError, ValueError):
        pass
    return False


def read_size(pid, pipe_link):
    """The byte count a thread of process `pid` asks for in a blocked read of the pipe
    named `pipe_link`, or None when none reads it (a relaying driver tells its REPL's
    one-byte reads of its next line from the reads of the code it runs)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tasks:
        call = _blocked_in(pid, tid)
        if call and call[0] in CALLS["read"] and _watches(pid, call[1][0], pipe_link, 0):
            return call[1][2]
    return None


def _blocked_in(pid, tid):
    """(syscall number, its arguments) of the call thread `tid` of `pid` is in, or
    None when it runs or is gone."""
    try:
        with open(f"/proc/{pid}/task/{tid}/syscall") as f:
            fields = f.read().split()
        if len(fields) < 3 or not fields[0].isdigit():
            return None
        return int(fields[0]), [int(a, 16) for a in fields[1:7]]
    except (OSError, ValueError):
        return None


def _watches(pid, fd, pipe_link, depth=3):
    """Whether waiting to read `fd` is waiting for the pipe: it is the pipe, or an epoll
    instance with it among its files (Racket polls an epoll fd that holds stdin)."""
    try:
        link = os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        return False
    if link == pipe_link:
        return True
    return depth > 0 and link == "anon_inode:[eventpoll]" and any(
        _watches(pid, inner, pipe_link, depth - 1) for inner in _epolled(pid, fd))


def _memory(pid, address, size):
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        mem.seek(address)
        return mem.read(size)


def _polled(pid, address, count):
    """The fds a poll waits to read: `struct pollfd {int fd; short events, revents;}`."""
    if not address or not 0 < count <= MAX_POLLED:
        return []
    data = _memory(pid, address, count * 8)
    fds = []
    for i in range(0, len(data) - 7, 8):
        fd = int.from_bytes(data[i:i + 4], "little", signed=True)
        if fd >= 0 and int.from_bytes(data[i + 4:i + 6], "little") & POLLIN:
            fds.append(fd)
    return fds


def _selected(pid, nfds, readfds):
    """The fds of a select's read set (a little-endian bit per fd)."""
    if not readfds or not 0 < nfds <= MAX_SELECT_FDS:
        return []
    data = _memory(pid, readfds, (nfds + 7) // 8)
    return [fd for fd in range(min(nfds, len(data) * 8)) if data[fd // 8] >> (fd % 8) & 1]


def _epolled(pid, epfd):
    """The fds an epoll instance waits to read, from its fdinfo lines
    `tfd: <fd> events: <hex mask> data: ...`."""
    fds = []
    with open(f"/proc/{pid}/fdinfo/{epfd}") as f:
        for line in f:
            words = line.split()
            if len(words) >= 4 and words[0] == "tfd:" and words[2] == "events:" \
                    and int(words[3], 16) & EPOLLIN:
                fds.append(int(words[1]))
    return fds
