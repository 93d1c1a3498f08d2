"""The system-call filter both sandboxes run under.

One list of rules, rendered twice: as a Docker seccomp profile (JSON, for
``--security-opt seccomp=``) and as a BPF program that libseccomp compiles
for bubblewrap's ``--seccomp FD``.  Nothing here is hand-assembled BPF.

The allow-list is Docker's default profile (moby/profiles seccomp/default.json,
the unconditional list for a container without capabilities, 2026-06) minus
the calls named in ``REMOVED``; everything not allowed fails with EPERM.
Calls Docker allows only for a capability (mount, unshare, setns, bpf,
perf_event_open, ptrace, ...) are not allowed at all, since both sandboxes
drop every capability.  Beyond Docker's default: no keyring, io_uring,
userfaultfd, bpf, perf events, ptrace or process_vm_*; no new namespaces or
mounts; sockets only of the families AF_UNIX, AF_INET and AF_INET6 (the
latter two inside an empty network namespace); only the native ABI (no
32-bit or x32 entry points, whose multiplexed socketcall cannot be checked).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DOCKER_DEFAULT_ALLOWED = """
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3
epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old
eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate
fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync
fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync
ftruncate ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv futex_wake futimesat
getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups
getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid
getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname getsockopt
get_thread_area gettid gettimeofday getuid getuid32 getxattr getxattrat inotify_add_watch inotify_init
inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents
io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit ipc kill landlock_add_rule
landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listmount
listxattr listxattrat llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise
map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2
mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64
mq_timedsend mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget msgrcv msgsnd msync munlock
munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause
pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64
prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev
pwritev2 read readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg
remap_file_pages removexattr removexattrat rename renameat renameat2 restart_syscall riscv_hwprobe
rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr
sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler
sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64
sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32
setitimer setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid
setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32
setxattr setxattrat shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask
sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statmount statx symlink symlinkat
sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun
timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime
timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask
uname unlink unlinkat uretprobe utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid
waitpid write writev
""".split()

# Allowed by Docker's default but not here, and why.
REMOVED = {
    "socketcall": "32-bit socket multiplexer: its address family cannot be checked",
    "ipc": "32-bit System V IPC multiplexer",
    "shmget": "System V shared memory lies outside the size-capped folders",
    "shmat": "System V shared memory",
    "shmctl": "System V shared memory",
    "shmdt": "System V shared memory",
    "socketpair": "allowed below for AF_UNIX only",
    "name_to_handle_at": "file handles of host file systems",
    "listmount": "the mount table is nothing model code needs",
    "statmount": "the mount table",
    "fanotify_mark": "file system monitoring of host mounts (its init call is denied anyway)",
}

# Never allowed, whatever the list above says; each is probed by the tests.
FORBIDDEN = (
    "keyctl", "add_key", "request_key",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "userfaultfd", "bpf", "perf_event_open",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "process_madvise",
    "unshare", "setns", "mount", "umount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
    "swapon", "swapoff", "acct", "quotactl", "syslog", "sethostname", "setdomainname",
    "settimeofday", "clock_settime", "iopl", "ioperm", "lookup_dcookie", "vhangup", "modify_ldt",
)

AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10
SOCKET_FAMILIES = (AF_UNIX, AF_INET, AF_INET6)
# CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET, as in Docker's profile.
CLONE_NEW_FLAGS = 0x7E020000
# personality(2) values Docker allows: PER_LINUX, UNAME26, ADDR_NO_RANDOMIZE, both, and the query.
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)


@dataclass(frozen=True)
class Rule:
    name: str
    action: str  # "allow" or "enosys"
    args: tuple = ()  # (index, op, value, value_two); op "eq" or "masked_eq" (arg & value == value_two)


def rules(socket_families: tuple[int, ...] = SOCKET_FAMILIES) -> list[Rule]:
    """Every rule of the filter; what matches none fails with EPERM.  ``socket_families``:
    the address families ``socket`` may open (the parser jail allows AF_UNIX only)."""
    allowed = [Rule(n, "allow") for n in DOCKER_DEFAULT_ALLOWED if n not in REMOVED and n not in FORBIDDEN]
    allowed.append(Rule("arch_prctl", "allow"))  # x86-64 thread-local storage; absent elsewhere
    allowed += [Rule("socket", "allow", ((0, "eq", family, 0),)) for family in socket_families]
    allowed.append(Rule("socketpair", "allow", ((0, "eq", AF_UNIX, 0),)))
    allowed.append(Rule("clone", "allow", ((0, "masked_eq", CLONE_NEW_FLAGS, 0),)))
    # clone3 passes its flags in memory, where a filter cannot look: ENOSYS
    # makes glibc fall back to clone, whose flags are checked above.
    allowed.append(Rule("clone3", "enosys"))
    allowed += [Rule("personality", "allow", ((0, "eq", value, 0),)) for value in PERSONALITIES]
    assert not {r.name for r in allowed} & set(FORBIDDEN)
    return allowed


# -- Docker ---------------------------------------------------------------------------

_DOCKER_OPS = {"eq": "SCMP_CMP_EQ", "masked_eq": "SCMP_CMP_MASKED_EQ"}


@lru_cache(maxsize=1)
def docker_profile() -> str:
    """The filter as a Docker seccomp profile (JSON text)."""
    syscalls = []
    plain = sorted(r.name for r in rules() if r.action == "allow" and not r.args)
    syscalls.append({"names": plain, "action": "SCMP_ACT_ALLOW"})
    for rule in rules():
        if rule.action == "enosys":
            syscalls.append({"names": [rule.name], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS})
        elif rule.args:
            args = [{"index": i, "value": v, "valueTwo": v2, "op": _DOCKER_OPS[op]} for i, op, v, v2 in rule.args]
            syscalls.append({"names": [rule.name], "action": "SCMP_ACT_ALLOW", "args": args})
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EPERM,
        # Native ABIs only: no subarchitectures (i386, x32, arm32) at all.
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": []},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": []},
        ],
        "syscalls": syscalls,
    }
    return json.dumps(profile, indent=1, sort_keys=True)


def docker_profile_file(directory: Path) -> Path:
    """The profile written once under ``directory`` (the docker CLI takes a file name)."""
    text = docker_profile()
    path = directory / f"seccomp-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


# -- bubblewrap -----------------------------------------------------------------------


class SeccompUnavailable(Exception):
    """libseccomp or its Python binding is missing, or this kernel has no seccomp."""


def kernel_has_seccomp() -> bool:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return False
    return any(line.startswith("Seccomp:") for line in status.splitlines())


@lru_cache(maxsize=2)
def bpf_for_bwrap(socket_families: tuple[int, ...] = SOCKET_FAMILIES) -> bytes:
    """The filter compiled by libseccomp for this machine's native ABI."""
    if not kernel_has_seccomp():
        raise SeccompUnavailable("this kernel has no seccomp filter support")
    try:
        import pyseccomp as seccomp
    except (ImportError, OSError) as exc:  # OSError: the binding found no libseccomp.so
        raise SeccompUnavailable(f"libseccomp's Python binding is not usable ({exc})") from None
    # The default for other ABIs (i386, x32) is the kill action: none is added.
    flt = seccomp.SyscallFilter(seccomp.ERRNO(errno.EPERM))
    ops = {"eq": seccomp.EQ, "masked_eq": seccomp.MASKED_EQ}
    for rule in rules(socket_families):
        # Negative: not a call of this ABI (the *64 and *_time64 variants), or
        # newer than this libseccomp; either way denied, the safe side.
        if seccomp.resolve_syscall(seccomp.Arch.NATIVE, rule.name) < 0:
            continue
        action = seccomp.ALLOW if rule.action == "allow" else seccomp.ERRNO(errno.ENOSYS)
        args = [seccomp.Arg(i, ops[op], v, v2) for i, op, v, v2 in rule.args]
        flt.add_rule(action, rule.name, *args)
    fd = os.memfd_create("agentic-vision-seccomp-build", os.MFD_CLOEXEC)
    with os.fdopen(fd, "w+b") as out:
        flt.export_bpf(out)
        out.seek(0)
        return out.read()


def bpf_fd() -> int:
    """A fresh memfd holding the filter, to pass to bubblewrap (which reads and closes it)."""
    fd = os.memfd_create("agentic-vision-seccomp", os.MFD_CLOEXEC)
    os.write(fd, bpf_for_bwrap())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def describe() -> str:
    return f"seccomp: {len(rules())} rules, EPERM otherwise, native ABI only ({platform.machine()})"
