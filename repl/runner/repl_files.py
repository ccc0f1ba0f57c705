"""The work folder: upload, download and list inside it (never outside), and the walk
that tells which files a run changed."""

import errno
import os
import stat

from repl_wire import MAX_FILE_SIZE, RequestError, sendable

MAX_WALK = 10000  # entries looked at when listing a folder or the files a run changed


def walk_files(root, limit=MAX_WALK):
    """{relative path: (mtime_ns, size)} of regular, non-hidden files under root;
    hidden folders and symlinks are skipped, and at most `limit` entries are seen."""
    found, seen, stack = {}, 0, [""]
    while stack and seen < limit:
        rel = stack.pop()
        try:
            entries = os.scandir(os.path.join(root, rel) if rel else root)
        except OSError:
            continue
        with entries:
            for entry in entries:
                seen += 1
                if seen > limit:
                    break
                if entry.name.startswith("."):
                    continue
                path = f"{rel}/{entry.name}" if rel else entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(path)
                    elif entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        found[path] = (st.st_mtime_ns, st.st_size)
                except OSError:
                    continue
    return found


class FileStore:
    """Upload, download and list under the work folder, never leaving it.

    A path is refused when it is absolute, holds NUL or `..`, or resolves (realpath)
    outside the folder; the resolved path is then opened one component at a time with
    O_NOFOLLOW, so a symlink swapped in meanwhile is refused too.
    """

    def __init__(self, root, max_size=MAX_FILE_SIZE):
        self.root = os.path.realpath(root)
        self.max_size = max_size

    def resolve(self, path, allow_root=False):
        """The path's components relative to the root, after the checks above."""
        if not isinstance(path, str):
            raise RequestError(400, "invalid-input",
                               f"'path' must be a string, not {type(path).__name__}.")
        if "\x00" in path:
            raise RequestError(400, "bad-path", "The path contains a NUL character.")
        if path.startswith("/"):
            raise RequestError(400, "bad-path", "The path must be relative to the work "
                                                "folder, not absolute.")
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise RequestError(400, "bad-path", "The path must not contain '..'.")
        if not parts and not allow_root:
            raise RequestError(400, "bad-path", "The path names the work folder itself; "
                                                "give a file name.")
        real = os.path.realpath(os.path.join(self.root, *parts))
        if real != self.root and not real.startswith(self.root + os.sep):
            raise RequestError(400, "bad-path", f"{path!r} leads outside the work folder.")
        rel = os.path.relpath(real, self.root)
        return [] if rel == "." else rel.split(os.sep)

    def _open(self, parts, flags, mode=0o644, make_dirs=False):
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for name in parts[:-1]:
                if make_dirs:
                    try:
                        os.mkdir(name, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                                dir_fd=fd)
                os.close(fd)
                fd = child
            if not parts:
                return os.dup(fd)
            return os.open(parts[-1], flags | os.O_NOFOLLOW, mode, dir_fd=fd)
        finally:
            os.close(fd)

    def upload(self, path, data):
        if not isinstance(data, (bytes, bytearray)):
            raise RequestError(400, "invalid-input",
                               f"'data' must be binary, not {type(data).__name__}.")
        if len(data) > self.max_size:
            raise RequestError(413, "too-large", f"The file has {len(data)} bytes; the "
                                                 f"limit is {self.max_size}.")
        parts = self.resolve(path)
        with _os_errors(path):
            fd = self._open(parts, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NONBLOCK,
                            make_dirs=True)
            with open(fd, "wb") as fh:
                fh.write(data)
        return {"path": "/".join(parts), "size": len(data)}

    def download(self, path):
        parts = self.resolve(path)
        with _os_errors(path):
            fd = self._open(parts, os.O_RDONLY | os.O_NONBLOCK)
            with open(fd, "rb") as fh:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise RequestError(400, "bad-path", f"{path!r} is not a regular file.")
                data = b"" if st.st_size > self.max_size else fh.read(self.max_size + 1)
        if st.st_size > self.max_size or len(data) > self.max_size:
            raise RequestError(413, "too-large",
                               f"{path!r} is larger than {self.max_size} bytes.")
        return {"path": "/".join(parts), "data": data}

    def list(self, path=""):
        parts = self.resolve(path, allow_root=True)
        entries, truncated = [], False
        with _os_errors(path):
            fd = self._open(parts, os.O_RDONLY | os.O_DIRECTORY)
            try:
                with os.scandir(fd) as it:
                    for entry in it:
                        if len(entries) >= MAX_WALK:
                            truncated = True
                            break
                        st = entry.stat(follow_symlinks=False)
                        entries.append({"name": sendable(entry.name),
                                        "type": _file_type(st.st_mode),
                                        "size": st.st_size, "mtime": st.st_mtime})
            finally:
                os.close(fd)
        entries.sort(key=lambda e: e["name"])
        reply = {"path": "/".join(parts), "entries": entries}
        if truncated:
            reply["truncated"] = True
        return reply


def _file_type(mode):
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


class _os_errors:
    """Turns the OSErrors of a file action into replies."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if not isinstance(exc, OSError):
            return False
        path = self.path
        if isinstance(exc, FileNotFoundError):
            raise RequestError(404, "no-such-file", f"There is no {path!r}.")
        if isinstance(exc, IsADirectoryError):
            raise RequestError(400, "bad-path", f"{path!r} is a folder.")
        if isinstance(exc, NotADirectoryError):
            raise RequestError(400, "bad-path", f"Part of {path!r} is not a folder.")
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise RequestError(400, "bad-path", f"{path!r} is a symbolic link.")
        if exc.errno == errno.ENXIO:
            raise RequestError(400, "bad-path", f"{path!r} is not a regular file.")
        if isinstance(exc, PermissionError):
            raise RequestError(403, "permission-denied", f"{path!r} is not accessible.")
        raise RequestError(500, "io-error", sendable(f"{path!r}: {exc.strerror or exc}"))
