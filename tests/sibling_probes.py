"""The code a victim session runs to hold secrets, and the probe that hunts for them.

Both are plain Python sources that take their parameters as one JSON object
(``P``), so the same probe runs inside the victim (the positive control: it
must find the victim's own token, processes, sockets and IPC objects), inside
the attacker (it must find nothing), and on the host against a host process
(the control for the memory readers, which the seccomp filter refuses even
to a session's own children).  The token is never given to the probe: it
looks for ``PATTERN``, so whatever it reports was found, not brought.
"""

from __future__ import annotations

import json
import secrets

PATTERN = r"avsib[0-9a-f]{32}"
SECRET_FILE = "sibling-secret.txt"
FOLDERS = ("/work", "/tmp", "/dev/shm")


def new_secrets() -> dict:
    """A victim's token and the names of its sockets and IPC objects (the attacker is told the names)."""
    return {"token": "avsib" + secrets.token_hex(16), "name": "avsib-" + secrets.token_hex(4),
            "key": secrets.randbelow(2**30) + 1}


def with_params(body: str, params: dict) -> str:
    return f"import json as _json\nP = _json.loads({json.dumps(params)!r})\n" + body


# A process that holds the token in its memory, its environment and its command line, and hands it to
# whoever connects to its TCP port on 127.0.0.1 or its abstract unix socket.  argv: token, name.
HOLDER = r"""
import os, socket, sys, threading, time
token, name = sys.argv[1], sys.argv[2]
held = [token.encode() * 64]
tcp = socket.socket()
tcp.bind(("127.0.0.1", 0))
tcp.listen(16)
uds = socket.socket(socket.AF_UNIX)
uds.bind("\0" + name)
uds.listen(16)
def serve(server):
    while True:
        conn, _ = server.accept()
        conn.sendall(token.encode())
        conn.close()
for server in (tcp, uds):
    threading.Thread(target=serve, args=(server,), daemon=True).start()
print(tcp.getsockname()[1], flush=True)
while True:
    time.sleep(60)
"""

# Run in the victim: files, two long-running children, and System V and POSIX IPC objects holding the token.
# The children and their Popen objects stay for the session's later runs (its variables persist).
VICTIM = r"""
import ctypes, os, subprocess, sys, time
TOKEN, NAME, KEY = P["token"], P["name"], P["key"]
for folder in ("/work", "/tmp", "/dev/shm"):
    with open(os.path.join(folder, "sibling-secret.txt"), "w") as f:
        f.write(TOKEN)
sibling_holder = subprocess.Popen([sys.executable, "-c", P["holder"], TOKEN, NAME], stdout=subprocess.PIPE, text=True,
                                  env=dict(os.environ, SIBLING_TOKEN=TOKEN))
port = int(sibling_holder.stdout.readline())
sibling_sleeper = subprocess.Popen(["sleep", "300"])
waited = time.monotonic() + 10  # Popen may return (vfork) before the kernel has named the child "sleep"
while open(f"/proc/{sibling_sleeper.pid}/comm").read().strip() != "sleep" and time.monotonic() < waited:
    time.sleep(0.01)
libc = ctypes.CDLL(None, use_errno=True)
class Msg(ctypes.Structure):
    _fields_ = [("mtype", ctypes.c_long), ("mtext", ctypes.c_char * 64)]
queue = libc.msgget(KEY, 0o1600)  # IPC_CREAT | 0600
ipc = {"msg": queue >= 0 and libc.msgsnd(queue, ctypes.byref(Msg(1, TOKEN.encode())), 64, 0o4000) == 0,
       "sem": libc.semget(KEY, 1, 0o1600) >= 0}
mq = libc.mq_open(("/" + NAME).encode(), os.O_CREAT | os.O_RDWR, 0o600, None)
ipc["mq"] = mq >= 0 and libc.mq_send(mq, TOKEN.encode(), len(TOKEN), 0) == 0
libc.sem_open.restype = ctypes.c_void_p
ipc["posix_sem"] = bool(libc.sem_open(("/" + NAME).encode(), os.O_CREAT, 0o600, 1))
print(_json.dumps({"port": port, "holder": sibling_holder.pid, "sleeper": sibling_sleeper.pid, "ipc": ipc}))
"""

# Run in the victim after the attack: its files, its children and its sockets, as it left them.
VICTIM_AGAIN = r"""
import socket
out = {"files": [open(f"{folder}/sibling-secret.txt").read() for folder in ("/work", "/tmp", "/dev/shm")],
       "children": [sibling_holder.poll(), sibling_sleeper.poll()], "served": []}
for family, address in ((socket.AF_INET, ("127.0.0.1", port)), (socket.AF_UNIX, "\0" + NAME)):
    with socket.socket(family) as s:
        s.settimeout(5)
        s.connect(address)
        out["served"].append(s.recv(100).decode())
print(_json.dumps(out))
"""

# P: pattern, port, name, key; pids (None: every pid there is), roots (None: every folder it can walk),
# signals (sent to every pid but its own ancestors), kill_all (then kill(-1, SIGSTOP/SIGKILL)), ipc (bool).
PROBE = r"""
import ctypes, errno, os, re, socket, stat
PATTERN = re.compile(P["pattern"].encode())
libc = ctypes.CDLL(None, use_errno=True)
me = os.getpid()
out = {"found": {}, "seen": {}, "threads": [], "named": [], "files_read": 0, "signalled": {}, "ptraced": [], "vm_read": [],
       "net": {}, "listed": {}, "ipc": {}}
def note(where, data):
    for hit in set(PATTERN.findall(data)):
        out["found"].setdefault(hit.decode(), []).append(where)
def why(exc):
    return errno.errorcode.get(exc.errno, str(exc.errno)) if isinstance(exc, OSError) and exc.errno else type(exc).__name__
def failed():
    return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
def parent(pid):
    try:
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError):
        return 0
ancestors, pid = set(), parent(me)
while pid > 0 and pid not in ancestors:
    ancestors.add(pid)
    pid = parent(pid)
visible = [int(d) for d in os.listdir("/proc") if d.isdigit()] if P["pids"] is None else P["pids"]

# Processes: their names, command lines and environments.
for pid in visible:
    try:
        out["seen"][str(pid)] = open(f"/proc/{pid}/comm").read().strip()
    except OSError as exc:
        out["seen"][str(pid)] = why(exc)
    for name in ("cmdline", "environ"):
        try:
            note(f"/proc/{pid}/{name}", open(f"/proc/{pid}/{name}", "rb").read())
        except OSError:
            pass
    try:  # its threads: a signal to a thread id is a signal to its process
        out["threads"] += [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        pass

# Files: every writable mount, the usual places, and other processes' folders through /proc.
mounts = [line.split()[4:6] for line in open("/proc/self/mountinfo")]
if P["roots"] is None:
    roots = [path for path, options in mounts if options.split(",")[0] == "rw" and not path.startswith(("/proc", "/sys"))]
    roots += ["/work", "/tmp", "/dev/shm", "/dev/mqueue", "/var/tmp", "/run", "/home", "/root", "/mnt", "/media", "/srv"]
    for pid in visible:
        if pid != me:
            roots += [f"/proc/{pid}/cwd"] + [f"/proc/{pid}/root{folder}" for folder in ("/work", "/tmp", "/dev/shm")]
else:
    roots = P["roots"]
# Not walked (also where reached through /proc/PID/root or /proc/PID/cwd): the read-only trees (the
# interpreter and its libraries), /proc and /sys.
pruned = {path for path, options in mounts if options.split(",")[0] == "ro"} | {"/proc", "/sys"}
def inside(path):
    through = re.match(r"/proc/(\d+)/(cwd|root)(.*)", path)
    if not through:
        return path
    try:
        base = os.readlink(f"/proc/{through[1]}/cwd") if through[2] == "cwd" else "/"
    except OSError:
        base = "/"
    return os.path.normpath(base + "/" + through[3])
budget = [20000, 256 << 20]
for root in roots:
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if inside(os.path.join(folder, d)) not in pruned]
        for name in files:
            path = os.path.join(folder, name)
            if name == "sibling-secret.txt":
                out["named"].append(path)
            try:
                st = os.lstat(path)
                if not stat.S_ISREG(st.st_mode) or st.st_size > 1 << 20 or budget[0] <= 0 or budget[1] <= 0:
                    continue
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            budget[0] -= 1
            budget[1] -= len(data)
            out["files_read"] += 1
            note(path, data)

# Memory: /proc/PID/mem and process_vm_readv over each visible process's writable mappings.
class Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
libc.process_vm_readv.argtypes = [ctypes.c_int, ctypes.POINTER(Iovec), ctypes.c_ulong, ctypes.POINTER(Iovec), ctypes.c_ulong, ctypes.c_ulong]
libc.process_vm_readv.restype = ctypes.c_ssize_t
def vm_read(pid, lo, size):
    buf = ctypes.create_string_buffer(size)
    local, remote = Iovec(ctypes.cast(buf, ctypes.c_void_p), size), Iovec(lo, size)
    n = libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    return buf.raw[:n] if n > 0 else None
for pid in visible:
    if pid == me:
        continue
    try:
        maps = open(f"/proc/{pid}/maps").read().splitlines()
    except OSError:
        continue
    regions = [[int(x, 16) for x in line.split()[0].split("-")] for line in maps if line.split()[1].startswith("rw")]
    left = 256 << 20
    try:
        with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
            for lo, hi in regions:
                try:
                    mem.seek(lo)
                    data = mem.read(min(hi - lo, left))
                except OSError:
                    continue
                left -= len(data)
                note(f"/proc/{pid}/mem", data)
    except OSError:
        pass
    for lo, hi in regions:
        data = vm_read(pid, lo, min(hi - lo, 16 << 20))
        if data:
            out["vm_read"] += [] if pid in out["vm_read"] else [pid]
            note(f"process_vm_readv {pid}", data)

# Every pid there could be (and every one listed, however high): process_vm_readv, ptrace attach, then the
# signals; kill(-1) last reaches whatever it may signal, listed or not.
every = sorted(set(range(1, 32769)) | set(visible)) if P["pids"] is None else P["pids"]
targets = [p for p in every if p != me and p not in ancestors]
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
for pid in targets:
    if vm_read(pid, 0x400000, 64) is not None and pid not in out["vm_read"]:
        out["vm_read"].append(pid)
    if libc.ptrace(16, pid, None, None) == 0:  # PTRACE_ATTACH
        out["ptraced"].append(pid)
        os.waitpid(pid, 0x40000000)  # __WALL
        libc.ptrace(17, pid, None, None)  # PTRACE_DETACH
for sig in P["signals"]:
    reached = []
    for pid in targets:
        try:
            os.kill(pid, sig)
            reached.append(pid)
        except OSError:
            pass
    out["signalled"][str(sig)] = reached
if P["kill_all"]:
    for sig in (19, 9):  # SIGSTOP, SIGKILL to every process it may signal
        try:
            os.kill(-1, sig)
            out["signalled"][f"all {sig}"] = "sent"
        except OSError as exc:
            out["signalled"][f"all {sig}"] = why(exc)

# The network: the victim's port and abstract socket, and whether they are even listed.
for what, family, address in (("tcp", socket.AF_INET, ("127.0.0.1", P["port"])), ("unix", socket.AF_UNIX, "\0" + P["name"])):
    with socket.socket(family) as s:
        s.settimeout(3)
        try:
            s.connect(address)
            data = s.recv(200)
            note(what, data)
            out["net"][what] = "connected"
        except OSError as exc:
            out["net"][what] = why(exc)
tcp = open("/proc/net/tcp").read().splitlines()[1:]
out["listed"]["tcp"] = any(line.split()[1].endswith(":%04X" % P["port"]) and line.split()[3] == "0A" for line in tcp)
out["listed"]["unix"] = any(line.split()[-1] == "@" + P["name"] for line in open("/proc/net/unix").read().splitlines()[1:])

# IPC: the victim's System V key and POSIX names.
if P["ipc"]:
    class Msg(ctypes.Structure):
        _fields_ = [("mtype", ctypes.c_long), ("mtext", ctypes.c_char * 64)]
    queue = libc.msgget(P["key"], 0)
    out["ipc"]["msg"] = failed() if queue < 0 else "found"
    msg = Msg()
    if queue >= 0 and libc.msgrcv(queue, ctypes.byref(msg), 64, 0, 0o4000) >= 0:
        note("msgrcv", msg.mtext)
        libc.msgsnd(queue, ctypes.byref(msg), 64, 0o4000)  # back where it was
    out["ipc"]["sem"] = failed() if libc.semget(P["key"], 0, 0) < 0 else "found"
    out["ipc"]["sysvipc listed"] = [kind for kind in ("msg", "sem") if any(
        line.split()[0] == str(P["key"]) for line in open(f"/proc/sysvipc/{kind}").read().splitlines()[1:])]
    mq = libc.mq_open(("/" + P["name"]).encode(), os.O_RDWR | os.O_NONBLOCK)
    out["ipc"]["mq"] = failed() if mq < 0 else "found"
    buf = ctypes.create_string_buffer(1 << 16)
    if mq >= 0:
        n = libc.mq_receive(mq, buf, 1 << 16, None)
        if n > 0:
            note("mq_receive", buf.raw[:n])
            libc.mq_send(mq, buf, n, 0)
    libc.sem_open.restype = ctypes.c_void_p
    out["ipc"]["posix_sem"] = "found" if libc.sem_open(("/" + P["name"]).encode(), 0) else failed()
print(_json.dumps(out))
"""
