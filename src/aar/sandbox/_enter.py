"""Launcher stage between the supervisor and bubblewrap. Standard library only.

Run as ``python -I -S _enter.py FD`` where FD holds a plan written by ``bwrap.py`` (``marshal``
format: builtin, so the helper starts without importing ``json``). When
the supervisor is root it:

1. enters a private mount namespace (nothing it mounts is visible on the host);
2. mounts a small tmpfs on the staging directory and bind-mounts every source the sandbox
   needs there, opening each source component by component without following symlinks (a
   path swapped for a symlink by an agent makes the launch fail instead of exposing the target);
   it also mounts there the sandbox's private ``/tmp`` and ``/dev/shm``, capped in size and in
   inodes (bubblewrap's own ``--tmpfs`` takes no inode option);
3. drops to the sandbox's unprivileged uid/gid with no supplementary groups;
4. applies the rlimits and execs bubblewrap, which then runs with an unprivileged user namespace.

Staging is what lets an unprivileged uid see a Python installed under a mode-700 home: bwrap
resolves its bind sources as the sandbox uid, which cannot traverse ``/root``, but it can
traverse the staging tmpfs, where the interpreter directory is already mounted.

In ``unsafe`` mode it only applies the rlimits and execs the command directly.
"""

import ctypes
import marshal
import os
import resource
import stat
import sys

CLONE_NEWNS = 0x00020000
MS_NOSUID = 2
MS_NODEV = 4
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18


def _die(message: str) -> None:
    sys.stderr.write(f"aar-sandbox: {message}\n")
    sys.stderr.flush()
    os._exit(126)


def _libc_call(libc: ctypes.CDLL, name: str, *args: object) -> None:
    if getattr(libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")


def _open_nofollow(path: str) -> int:
    """O_PATH fd of ``path``, refusing any symlink on the way."""
    if not path.startswith("/"):
        raise OSError(f"not absolute: {path}")
    fd = os.open("/", os.O_PATH | os.O_DIRECTORY)
    try:
        for part in [p for p in path.split("/") if p]:
            if part in (".", ".."):
                raise OSError(f"dot component in {path}")
            nxt = os.open(part, os.O_PATH | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                raise OSError(f"symlink in bind source {path}")
        return fd
    except BaseException:
        os.close(fd)
        raise


def _stage(plan: dict) -> tuple:
    """Mount every bind source and private tmpfs under the staging root; return their staged paths."""
    libc = ctypes.CDLL(None, use_errno=True)
    _libc_call(libc, "unshare", CLONE_NEWNS)
    _libc_call(libc, "mount", b"none", b"/", None, MS_REC | MS_PRIVATE, None)
    root = plan["stage_root"]
    _libc_call(libc, "mount", b"tmpfs", root.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"mode=0755,size=64k")
    staged = []
    for index, src in enumerate(plan["binds"]):
        fd = _open_nofollow(src)
        try:
            target = f"{root}/{index}"
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                os.mkdir(target, 0o755)
            else:
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
            _libc_call(libc, "mount", f"/proc/self/fd/{fd}".encode(), target.encode(), None,
                       MS_BIND | MS_REC, None)
        finally:
            os.close(fd)
        staged.append(target)
    tmpfs = []
    for index, options in enumerate(plan.get("tmpfs", ())):
        target = f"{root}/tmpfs{index}"
        os.mkdir(target, 0o755)
        _libc_call(libc, "mount", b"tmpfs", target.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options.encode())
        tmpfs.append(target)
    return staged, tmpfs


def _drop(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        _die("could not drop privileges")


def _apply_rlimits(rlimits: dict) -> None:
    """Apply the map of :func:`aar.sandbox.limits.rlimits_for` (this script runs -I -S: no aar import)."""
    for name, (soft, hard) in rlimits.items():
        resource.setrlimit(getattr(resource, name), (soft, hard))


def main() -> None:
    fd = int(sys.argv[1])
    with os.fdopen(fd, "rb") as handle:
        plan = marshal.loads(handle.read())
    try:
        if plan["mode"] == "unsafe":
            os.chdir(plan["cwd"])
            _apply_rlimits(plan["rlimits"])
            os.execvpe(plan["command"][0], plan["command"], plan["env"])
        sources, tmpfs = _stage(plan) if plan["stage_root"] else (list(plan["binds"]), [])
        args = [item if not isinstance(item, list) else tmpfs[item[1]] if item[0] == "tmpfs"
                else sources[item[0]] for item in plan["args"]]
        if plan["drop"]:
            _drop(plan["uid"], plan["gid"])
        args_fd = os.memfd_create("bwrap-args", 0)
        os.write(args_fd, b"".join(a.encode() + b"\0" for a in args))
        os.lseek(args_fd, 0, os.SEEK_SET)
        _apply_rlimits(plan["rlimits"])
        os.execve(plan["bwrap"], ["bwrap", "--args", str(args_fd), "--", *plan["command"]], {})
    except OSError as exc:
        _die(f"launch failed: {exc}")


if __name__ == "__main__":
    main()
