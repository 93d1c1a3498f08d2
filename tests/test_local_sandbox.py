"""The local sandbox's own machinery: the matplotlib seed folder, the seccomp filter's two renderings."""

from __future__ import annotations

import os
import subprocess
import sys

from agentic_vision.paths import sandbox_env_dir, state_dir


def _seed_of_a_new_process(home) -> str:
    code = (
        "from agentic_vision.sandboxing.bubblewrap import LocalExecutor\n"
        "ex = LocalExecutor(pool_size=0)\n"
        "print(ex._mpl_seed)\n"
    )
    # Another state folder; the sandbox environment named explicitly (no fall-back to this interpreter).
    env = dict(os.environ, AGENTIC_VISION_HOME=str(home),
               AGENTIC_VISION_SANDBOX_PYTHON=str(sandbox_env_dir() / "bin" / "python"))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, check=True)
    return done.stdout.strip().splitlines()[-1]


def test_matplotlib_seed_is_one_folder_across_processes_and_strays_go(tmp_path):
    home = tmp_path / "home"
    stray = home / "matplotlib" / "1034159998920359563"  # how hash() used to name them
    stray.mkdir(parents=True)
    (stray / "fontlist-v390.json").write_text("{}")
    os.utime(stray, (0, 0))  # long unused; a fresh one may belong to a running older version
    recent = home / "matplotlib" / "1387658880562744584"
    recent.mkdir()
    first = _seed_of_a_new_process(home)
    second = _seed_of_a_new_process(home)  # hash randomisation differs per process
    assert first == second and first != "None"
    assert list(os.scandir(first)), "the seed folder holds matplotlib's font list"
    assert not stray.exists()
    assert recent.exists()
    assert sorted(p.name for p in (home / "matplotlib").iterdir()) == sorted([os.path.basename(first), recent.name])
    assert state_dir() != home  # the shared state folder was not touched


def test_one_rule_list_renders_both_filters():
    import json

    from agentic_vision.sandboxing import seccomp

    profile = json.loads(seccomp.docker_profile())
    assert (profile["defaultAction"], profile["defaultErrnoRet"]) == ("SCMP_ACT_ERRNO", 1)
    assert all(not arch["subArchitectures"] for arch in profile["archMap"])  # no i386/x32 entry points
    allowed = {name for rule in profile["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW" for name in rule["names"]}
    assert not allowed & set(seccomp.FORBIDDEN)
    assert {"socket", "clone", "personality", "read", "mmap"} <= allowed
    conditional = {rule["names"][0]: rule["args"] for rule in profile["syscalls"] if rule.get("args")}
    sockets = [rule["args"][0]["value"] for rule in profile["syscalls"] if rule["names"] == ["socket"]]
    assert sorted(sockets) == [1, 2, 10]  # AF_UNIX, AF_INET, AF_INET6
    assert conditional["clone"] == [{"index": 0, "op": "SCMP_CMP_MASKED_EQ", "value": 0x7E020000, "valueTwo": 0}]
    program = seccomp.bpf_for_bwrap()
    assert len(program) % 8 == 0 and len(program) > 8 * 100  # sock_filter entries, compiled by libseccomp
