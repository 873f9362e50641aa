"""A hostile agent: runs INSIDE the sandbox and tries to escape, leak or exhaust resources.

Usage: ``python hostile.py ATTEMPT CONFIG_JSON``. Every probe prints one JSON line
``{"attempt", "target", "leaked", "detail"}``; ``leaked`` is true when the probe got something it
must not get (a secret, a connection, a write outside the workspace, a privilege). The exit
status is 3 if anything leaked, 0 otherwise. Resource attempts run until the supervisor kills them.
Standard library only.
"""

import ctypes
import json
import os
import socket
import sqlite3
import sys
import time

ATTEMPT = sys.argv[1]
CFG = json.loads(sys.argv[2])
SECRET = CFG["secret"]
LEAKS: list = []


def report(target: str, leaked: bool, detail: str = "") -> None:
    if leaked:
        LEAKS.append(target)
    print(json.dumps({"attempt": ATTEMPT, "target": target, "leaked": leaked, "detail": detail[:300]}),
          flush=True)


def try_read(target: str, path: str) -> None:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        report(target, False, f"{type(exc).__name__}: {exc}")
        return
    report(target, SECRET.encode() in data, f"read {len(data)} bytes")


def read_gt_abs() -> None:
    try_read("gt_abs", CFG["gt_path"])
    try_read("gt_dir_listing", os.path.join(os.path.dirname(CFG["gt_path"]), "."))


def read_gt_rel() -> None:
    try_read("gt_rel", CFG["gt_rel"])
    try_read("gt_rel_dotdot", "../" * 12 + CFG["gt_path"].lstrip("/"))


def read_gt_symlink() -> None:
    for name, target in (("gt_link", CFG["gt_path"]), ("gt_dir_link", os.path.dirname(CFG["gt_path"]))):
        try:
            os.symlink(target, name)
        except OSError as exc:
            report(f"symlink_create_{name}", False, str(exc))
            continue
        inner = name if name == "gt_link" else os.path.join(name, os.path.basename(CFG["gt_path"]))
        try_read(f"via_{name}", inner)


def read_proc() -> None:
    found = []
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    for pid in pids:
        for leaf in ("environ", "cmdline"):
            try:
                with open(f"/proc/{pid}/{leaf}", "rb") as handle:
                    if SECRET.encode() in handle.read():
                        found.append(f"{pid}/{leaf}")
            except OSError:
                continue
    report("proc_scan_environ_cmdline", bool(found), f"{pids} {found}")
    host_pid = CFG["host_pid"]
    try_read("proc_host_pid_environ", f"/proc/{host_pid}/environ")
    try_read("proc_host_pid_root_gt", f"/proc/{host_pid}/root{CFG['gt_path']}")
    try_read("proc_1_root_gt", f"/proc/1/root{CFG['gt_path']}")
    try_read("proc_1_cwd_gt", f"/proc/1/cwd/{CFG['gt_rel']}")


def read_db() -> None:
    try_read("db_file", CFG["db_path"])
    try:
        con = sqlite3.connect(f"file:{CFG['db_path']}?mode=ro", uri=True)
        rows = con.execute("select * from vault").fetchall()
        report("db_sqlite", SECRET in repr(rows), repr(rows)[:100])
    except sqlite3.Error as exc:
        report("db_sqlite", False, f"{type(exc).__name__}: {exc}")


def read_env() -> None:
    values = "\n".join(f"{k}={v}" for k, v in os.environ.items())
    extra = sorted(set(os.environ) - set(CFG["allowed_env"]))
    report("env_secret_value", SECRET in values, "")
    report("env_unexpected_keys", bool(extra), ",".join(extra))


def connect_tcp(target: str, host: str, port: int, family=socket.AF_INET) -> None:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect((host, port))
            sock.sendall(b"GET /ping HTTP/1.0\r\n\r\n")
            data = sock.recv(100)
        report(target, True, f"connected and got {data[:40]!r}")
    except OSError as exc:
        report(target, False, f"{type(exc).__name__}: {exc}")


def tcp_local() -> None:
    connect_tcp("tcp_127.0.0.1", "127.0.0.1", CFG["tcp_port"])
    connect_tcp("tcp_localhost", "localhost", CFG["tcp_port"])
    connect_tcp("tcp_::1", "::1", CFG["tcp_port"], socket.AF_INET6)
    for addr in CFG["host_addrs"]:
        connect_tcp(f"tcp_host_{addr}", addr, CFG["tcp_port"])
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect("\0" + CFG["abstract_name"])
        report("abstract_unix_socket", True, "connected")
    except OSError as exc:
        report("abstract_unix_socket", False, f"{type(exc).__name__}: {exc}")


def tcp_remote() -> None:
    for host, port in (("1.1.1.1", 443), ("10.255.255.1", 80), ("8.8.8.8", 53)):
        connect_tcp(f"tcp_{host}", host, port)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"x", ("8.8.8.8", 53))
        report("udp_8.8.8.8", True, "datagram sent")
    except OSError as exc:
        report("udp_8.8.8.8", False, f"{type(exc).__name__}: {exc}")
    try:
        socket.getaddrinfo("example.com", 443)
        report("dns_example.com", True, "resolved")
    except OSError as exc:
        report("dns_example.com", False, f"{type(exc).__name__}: {exc}")


def other_workspace() -> None:
    try_read("other_ws_abs", CFG["other_ws_file"])
    try_read("other_ws_rel", os.path.relpath(CFG["other_ws_file"], os.getcwd()))
    try:
        listing = os.listdir(os.path.dirname(CFG["other_ws_file"]))
        report("other_ws_listdir", bool(listing), repr(listing))
    except OSError as exc:
        report("other_ws_listdir", False, f"{type(exc).__name__}: {exc}")


def home() -> None:
    try_read("home_secret_file", CFG["home_secret"])
    try:
        listing = os.listdir(os.path.dirname(CFG["home_secret"]))
        report("home_listdir", bool(set(listing) & set(CFG["home_host_entries"])), repr(listing))
    except OSError as exc:
        report("home_listdir", False, f"{type(exc).__name__}: {exc}")


def write_outside() -> None:
    name = f"escape-{CFG['nonce']}"
    for target in CFG["write_targets"]:
        path = os.path.join(target, name)
        try:
            with open(path, "w") as handle:
                handle.write(SECRET)
            # Only the private /tmp (a tmpfs of the sandbox) may accept a write; the test checks
            # on the host that nothing arrived there.
            private = target == "/tmp" or target.startswith("/tmp/")
            report(f"write_{target}", not private, "written to the private /tmp" if private else "written")
        except OSError as exc:
            report(f"write_{target}", False, f"{type(exc).__name__}: {exc}")


def escalate() -> None:
    report("uid_is_root", os.getuid() == 0 or os.geteuid() == 0, f"uid={os.getuid()}")
    with open("/proc/self/status") as handle:
        caps = {k: v.strip() for k, v in (line.split(":", 1) for line in handle) if k.startswith("Cap")}
    report("capabilities", any(int(v, 16) for v in caps.values()), repr(caps))
    try:
        os.setuid(0)
        report("setuid_0", True, "became root")
    except OSError as exc:
        report("setuid_0", False, str(exc))
    libc = ctypes.CDLL(None, use_errno=True)
    for label, flag in (("unshare_user", 0x10000000), ("unshare_net", 0x40000000)):
        ok = libc.unshare(flag) == 0
        report(label, ok, os.strerror(ctypes.get_errno()))
    ok = libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, None) == 0
    report("mount_tmpfs", ok, os.strerror(ctypes.get_errno()))
    try:
        os.chroot("/tmp")
        report("chroot", True, "chrooted")
    except OSError as exc:
        report("chroot", False, str(exc))


def fork_bomb() -> None:
    root = os.getpid()
    forked = 0
    reported = False
    while True:
        try:
            pid = os.fork()
        except OSError as exc:
            if os.getpid() == root and not reported:
                report("fork_bomb_capped", False, f"fork failed after {forked} children: {exc}")
                reported = True
            time.sleep(0.01)
            continue
        if pid == 0:
            forked = 0
            continue  # children keep forking too
        forked += 1
        if forked > CFG["max_processes"] * 4 and os.getpid() == root:
            report("fork_bomb_capped", True, f"forked {forked} children")


def memory() -> None:
    try:
        blob = bytearray(64 * 2**30)
        report("alloc_64GiB", True, f"got {len(blob)} bytes")
    except MemoryError:
        report("alloc_64GiB", False, "MemoryError")
    hoard = []
    try:
        while True:
            hoard.append(bytearray(8 * 2**20))
    except MemoryError:
        report("alloc_incremental_capped", False, f"MemoryError after {len(hoard) * 8} MiB")
    time.sleep(30)  # hold it; the watchdog should kill the tree on resident memory


def disk() -> None:
    chunk = b"x" * 2**20
    try:
        with open("big.bin", "wb") as handle:
            for _ in range(100):
                handle.write(chunk)
                handle.flush()
        report("single_100MiB_file", True, "written")
    except OSError as exc:
        report("single_100MiB_file", False, f"{type(exc).__name__}: {exc}")
    os.unlink("big.bin")
    for area in ("/tmp", "/dev/shm"):
        try:
            with open(os.path.join(area, "fill.bin"), "wb") as handle:
                for _ in range(100):
                    handle.write(chunk)
                    handle.flush()
            report(f"fill_{area}", True, "100 MiB written")
        except OSError as exc:
            report(f"fill_{area}", False, f"{type(exc).__name__}: {exc}")
    os.makedirs("fill", exist_ok=True)
    i = 0
    while True:  # many small files: each under RLIMIT_FSIZE; the watchdog must stop this
        with open(f"fill/{i}.bin", "wb") as handle:
            handle.write(chunk)
        i += 1


def inodes() -> None:
    cap = CFG["max_files"]
    for area in ("/tmp", "/dev/shm"):
        made = 0
        try:
            os.makedirs(os.path.join(area, "many"), exist_ok=True)
            while made < 4 * cap:  # empty files: no bytes, only inodes
                open(os.path.join(area, "many", str(made)), "w").close()
                made += 1
            report(f"inodes_{area}", True, f"{made} empty files")
        except OSError as exc:
            report(f"inodes_{area}", False, f"stopped after {made} files: {type(exc).__name__}: {exc}")
    os.makedirs("many", exist_ok=True)
    i = 0
    while True:  # empty files in the workspace: 0 bytes on disk; the watchdog must count inodes
        open(f"many/{i}", "w").close()
        i += 1


def cpu() -> None:
    for _ in range(2):
        if os.fork() == 0:
            break
    while True:
        pass


ATTEMPTS = {f.__name__: f for f in (read_gt_abs, read_gt_rel, read_gt_symlink, read_proc, read_db, read_env,
                                   tcp_local, tcp_remote, other_workspace, home, write_outside, escalate,
                                   fork_bomb, memory, disk, inodes, cpu)}

if __name__ == "__main__":
    ATTEMPTS[ATTEMPT]()
    sys.exit(3 if LEAKS else 0)
