"""Attacks from model code, judged by their effects on the host.

The guard is off here: these tests are about the OS-level boundary, which
must hold on its own.  After every attack the same session must still work.
The attacks that use only what the guard allows (files, the environment,
sockets) run guarded too: the guard lets them through, the OS stops them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from session_host import Peak, cgroup_file, children_of, folder_used, inside_pid, rss, session_root_pid


def run(session, code: str):
    return session.run(textwrap.dedent(code))


def still_works(session) -> None:
    result = session.run("print(6 * 7)")
    assert (result.outcome, result.output) == ("OUTCOME_OK", "42\n"), result.output


@pytest.fixture
def sandbox(open_sandbox):
    return open_sandbox(guard=False, timeout=20)


@pytest.fixture(params=[False, True], ids=["unguarded", "guarded"])
def either_sandbox(open_sandbox, request):
    """A session with the guard off, then on."""
    return open_sandbox(guard=request.param, timeout=20)


@pytest.fixture
def host_secrets(tmp_path):
    """A secret in the host's home and /tmp, and one in the environment."""
    token = f"secret-{uuid.uuid4().hex}"
    home_file = Path.home() / f".agentic-vision-test-{uuid.uuid4().hex[:8]}"
    tmp_file = Path("/tmp") / f"agentic-vision-test-{uuid.uuid4().hex[:8]}"
    for path in (home_file, tmp_file):
        path.write_text(token)
    os.environ["AGENTIC_VISION_TEST_SECRET"] = token
    yield token, home_file, tmp_file
    del os.environ["AGENTIC_VISION_TEST_SECRET"]
    home_file.unlink()
    tmp_file.unlink()


@pytest.mark.parametrize("guard", [False, True], ids=["unguarded", "guarded"])
def test_host_files_and_environment_are_invisible(open_sandbox, host_secrets, guard):
    token, home_file, tmp_file = host_secrets
    session = open_sandbox(guard=guard, timeout=25)  # opened after the secret was set
    result = run(session, f"""
        import os, glob
        for path in [{str(home_file)!r}, {str(tmp_file)!r}]:
            try:
                with open(path) as f:
                    print(f.read())
            except OSError as exc:
                print('denied', type(exc).__name__)
        print(sorted(os.environ))
        for path in glob.glob('/proc/*/environ'):
            try:
                with open(path, 'rb') as f:
                    print(f.read())
            except OSError:
                pass
        print(os.path.exists({str(Path.home())!r}), sorted(os.listdir('/tmp')))
        found = []
        for root in ['/home', '/root', '/etc', '/var', '/run', '/srv', '/mnt', '/media', '/tmp', '/work']:
            for dirpath, dirs, files in os.walk(root):
                if 'site-packages' in dirpath or '/lib/python' in dirpath:
                    continue  # the interpreter's own read-only tree
                for name in files:
                    try:
                        with open(os.path.join(dirpath, name), errors='ignore') as f:
                            if {token!r} in f.read(1 << 20):
                                found.append(os.path.join(dirpath, name))
                    except OSError:
                        pass
        print('found', found)
    """)
    assert result.outcome == "OUTCOME_OK", result.output
    assert token not in result.output
    home_line, tmp_line = result.output.splitlines()[:2]
    assert tmp_line == "denied FileNotFoundError"  # the host's /tmp is not there at all
    # The host's home is missing, or in a container the image's own /root (not readable by the sandbox user).
    assert home_line in ("denied FileNotFoundError", "denied PermissionError")
    assert "AGENTIC_VISION_TEST_SECRET" not in result.output
    assert "found []" in result.output
    still_works(session)


def test_no_tcp_to_host_loopback_and_no_dns(either_sandbox):
    sandbox = either_sandbox
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    port = server.getsockname()[1]
    accepted = []

    def accept():
        end = time.monotonic() + 5
        while time.monotonic() < end:
            try:
                accepted.append(server.accept())
            except socket.timeout:
                pass

    thread = threading.Thread(target=accept)
    thread.start()
    try:
        result = run(sandbox, f"""
            import socket
            for host in ['127.0.0.1', '10.0.2.2', '8.8.8.8']:
                try:
                    socket.create_connection((host, {port}), timeout=1).close()
                    print('connected', host)
                except OSError as exc:
                    print('refused', host)
            try:
                socket.getaddrinfo('pypi.org', 443)
                print('dns works')
            except OSError:
                print('no dns')
        """)
    finally:
        thread.join()
        server.close()
    assert "connected" not in result.output, result.output
    assert "no dns" in result.output
    assert accepted == []
    still_works(sandbox)


def test_no_write_outside_the_working_directory(either_sandbox):
    sandbox = either_sandbox
    marker = f"agentic-vision-escape-{uuid.uuid4().hex[:8]}"
    result = run(sandbox, f"""
        import os, sys
        targets = ['/tmp/{marker}', '/usr/{marker}', '/etc/{marker}', '/{marker}',
                   '/opt/agentic-vision/sandbox/broker.py', os.path.join(sys.prefix, '{marker}')]
        for path in targets:
            try:
                with open(path, 'a') as f:
                    f.write('x')
                print('wrote', path)
            except OSError as exc:
                print('blocked', path)
        open('inside.txt', 'w').write('fine')
        print(open('inside.txt').read())
    """)
    # The sandbox's own /tmp is private scratch space; nothing reaches the host's.
    assert not Path(f"/tmp/{marker}").exists()
    for line in result.output.splitlines():
        if line.startswith("wrote"):
            assert line == f"wrote /tmp/{marker}"
    assert "fine" in result.output
    for path in (Path("/usr") / marker, Path("/etc") / marker, Path("/") / marker):
        assert not path.exists()
    still_works(sandbox)


def test_no_docker_socket_or_host_sockets(either_sandbox, tmp_path):
    sandbox = either_sandbox
    sock_path = Path("/tmp") / f"av-test-{uuid.uuid4().hex[:8]}.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(sock_path))
    listener.listen()
    try:
        result = run(sandbox, f"""
            import os, socket
            for path in ['/var/run/docker.sock', '/run/docker.sock', {str(sock_path)!r}]:
                s = socket.socket(socket.AF_UNIX)
                try:
                    s.connect(path)
                    print('reached', path)
                except OSError:
                    print('unreachable', path)
            print(os.path.exists('/run/docker.sock'), os.path.exists('/var/run/docker.sock'))
        """)
    finally:
        listener.close()
        sock_path.unlink()
    assert "reached" not in result.output
    assert "False False" in result.output
    still_works(sandbox)


def test_cannot_signal_host_processes(sandbox):
    victim = subprocess.Popen(["sleep", "60"])
    try:
        result = run(sandbox, f"""
            import os, signal
            try:
                os.kill({victim.pid}, signal.SIGKILL)
                print('signalled')
            except OSError as exc:
                print('no such process', type(exc).__name__)
            print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))
        """)
        assert "signalled" not in result.output
        pids = eval(result.output.strip().splitlines()[-1])
        assert max(pids) < 100  # its own pid namespace: a handful of processes
        # Killing everything it can see only ends the sandbox itself.
        crash = run(sandbox, "import os, signal\nos.kill(-1, signal.SIGKILL)")
        assert crash.outcome == "OUTCOME_FAILED"
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()
    still_works(sandbox)


def test_a_process_flood_stops_at_the_limit(sandbox):
    still_works(sandbox)  # the session's processes exist: the host can watch them
    root = session_root_pid(sandbox)
    marker = str(3000 + os.getpid() % 1000)

    def flood() -> int:  # the flood's processes on the host, by their command line
        count = 0
        for pid in children_of(root):
            try:
                count += Path(f"/proc/{pid}/cmdline").read_bytes() == f"sleep\0{marker}\0".encode()
            except OSError:
                pass
        return count

    with Peak(flood, every=0.002) as seen:
        result = run(sandbox, f"""
            import subprocess, time
            children = []
            try:
                for _ in range(500):
                    children.append(subprocess.Popen(['sleep', '{marker}']))
            except OSError as exc:
                print('stopped', type(exc).__name__)
            time.sleep(0.5)  # time for the host to count them
            for child in children:
                child.kill(); child.wait()
        """)
    assert "stopped" in result.output, result.output
    assert 0 < seen.peak < 64, (seen.peak, seen.samples)  # the host saw the flood, and it was held below 64
    assert flood() == 0
    still_works(sandbox)


def test_memory_limit_holds(open_sandbox):
    from agentic_vision.sandboxing.limits import Limits

    limit = Limits().memory_bytes
    # Reaching the limit is slow on a loaded host (the kernel reclaims before it kills): time is not the point here.
    sandbox = open_sandbox(guard=False, timeout=120)
    still_works(sandbox)
    root = session_root_pid(sandbox)
    usage = cgroup_file(root, "memory", "memory.usage_in_bytes", "memory.current")
    if usage is not None:  # the session's memory cgroup, which also counts its tmpfs pages
        measure = lambda: int(usage.read_text())  # noqa: E731
    else:  # rlimits only (no cgroup for this user): the resident memory of the session's processes
        measure = lambda: rss(children_of(root))  # noqa: E731
    with Peak(measure) as seen:
        result = run(sandbox, """
            import numpy as np
            blocks = []
            for _ in range(40):               # 40 GiB in total, far past the 2 GiB limit
                blocks.append(np.ones(2**27))  # 1 GiB of float64 each (128 Mi items, every page touched)
            print('allocated', sum(b.nbytes for b in blocks) >> 30, 'GiB')
        """)
    assert result.outcome == "OUTCOME_FAILED", result.output
    assert "allocated" not in result.output
    slack = 0 if usage is not None else 256 * 2**20  # rlimits cap data, not the interpreter's own pages
    assert 2**30 <= seen.peak <= limit + slack, (seen.peak >> 20, "MiB")  # it did allocate, up to the limit
    still_works(sandbox)


def test_disk_limit_holds(sandbox):
    from agentic_vision.sandboxing.limits import Limits

    limit = Limits().workdir_bytes
    result = run(sandbox, """
        chunk = b'x' * (16 << 20)
        try:
            for i in range(100):            # 1.6 GiB, past the 512 MiB working directory
                with open(f'fill-{i}.bin', 'wb') as f:
                    for _ in range(8):
                        f.write(chunk)
        except OSError as exc:
            print('stopped', exc.strerror)
    """)
    assert "stopped" in result.output, result.output
    used = folder_used(inside_pid(sandbox), "/work")  # the host kernel's count for the sandbox's /work
    assert limit // 2 <= used <= limit, used >> 20
    run(sandbox, "import os\nfor name in os.listdir('.'):\n    os.remove(name)")
    assert folder_used(inside_pid(sandbox), "/work") < limit // 8
    still_works(sandbox)


def test_file_size_limit_is_an_error_not_a_kill(sandbox):
    result = run(sandbox, """
        try:
            with open('big.bin', 'wb') as f:
                f.truncate(300 << 20)
                f.seek(0); f.write(b'x')
            print('created')
        except OSError as exc:
            print('refused', exc.strerror)
    """)
    assert "refused" in result.output, result.output
    still_works(sandbox)


def test_nothing_is_left_running_after_close(open_sandbox):
    session = open_sandbox(guard=False)
    marker = str(7000 + os.getpid() % 1000)
    run(session, f"""
        import subprocess, os
        subprocess.Popen(['sleep', '{marker}'], start_new_session=True)
        if os.fork() == 0:
            os.setsid(); os.execvp('sleep', ['sleep', '{marker}'])
    """)

    def leftovers():
        out = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True).stdout
        return out.split()

    assert leftovers(), "the test did not start its processes"
    session.close()
    deadline = time.monotonic() + 5
    while leftovers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftovers() == []


def test_symlinks_and_decompression_bombs_in_outputs_do_no_harm(sandbox):
    result = run(sandbox, """
        import os, zlib, struct
        os.symlink('/etc/passwd', 'leak.png')
        os.symlink('/proc/self/environ', 'env.jpg')
        def chunk(kind, data):
            return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
        w = h = 40000   # 1.6 gigapixels of 1-bit image, a few hundred KiB compressed
        raw = zlib.compress(b'\\x00' * ((w // 8 + 1) * h), 9)
        png = b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 1, 0, 0, 0, 0))
        png += chunk(b'IDAT', raw) + chunk(b'IEND', b'')
        open('bomb.png', 'wb').write(png)
        print('written', len(png))
    """)
    assert result.outcome == "OUTCOME_OK", result.output
    assert result.images == []
    assert "bomb.png was not returned" in result.output
    assert "root:" not in result.output
    still_works(sandbox)


def test_one_session_cannot_see_or_poison_another(open_sandbox):
    first = open_sandbox(guard=False)
    second = open_sandbox(guard=False)
    run(first, """
        import numpy as np, builtins, os
        np.sum = lambda *a, **k: 'poisoned'
        builtins.print = lambda *a, **k: None
        open('planted.txt', 'w').write('x')
        os.environ['PLANTED'] = '1'
    """)
    result = run(second, """
        import numpy as np, os
        print(np.sum([1, 2]), os.path.exists('planted.txt'), 'PLANTED' in os.environ, os.getpid())
    """)
    assert result.output.startswith("3 False False")
    still_works(second)
