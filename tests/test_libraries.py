"""Extra libraries: `sandbox setup --with`, `sandbox build --with`, `--libraries`, `Agent(libraries=)`.

The package is a wheel the test writes itself, installed from a folder with
--no-index and the host's pip settings removed: no network.  The local
environments go into a temporary AGENTIC_VISION_HOME whose default
environment is the real one (a symlink; nothing of it is rebuilt or changed);
the Docker image is built on a test-only tag of the default image and removed
afterwards.  Model code runs with the guard off: what the guard lets model code
import is the guard's business, tested with it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import docker
import pytest

from agentic_vision import Agent
from agentic_vision.errors import InputError, SandboxUnavailable
from agentic_vision.loop.prompt import tool_description
from agentic_vision.models.gemini import GeminiModel
from agentic_vision.paths import sandbox_env_dir
from agentic_vision.sandboxing.extras import library_set, pip_failure
from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from conftest import require, require_docker
from tiny_wheel import NAME, VERSION, isolated_pip_env, make_wheel

HELLO = f"import {NAME}\nprint({NAME}.hello())"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    make_wheel(folder)
    return folder


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A temporary AGENTIC_VISION_HOME on the real default environment."""
    real = sandbox_env_dir()
    require((real / "agentic-vision-requirements.sha256").exists(),
            f"the local sandbox's environment ({real}): run 'agentic-vision sandbox setup'")
    home = tmp_path_factory.mktemp("home")
    (home / "sandbox-env").symlink_to(real)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AGENTIC_VISION_HOME", str(home))
        yield home


def cli(*args, env: dict | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agentic_vision", *args], capture_output=True, text=True,
                          timeout=600, input=stdin, env=isolated_pip_env({**os.environ, **(env or {})}))


@pytest.fixture(scope="module")
def layer(home, wheels) -> Path:
    done = cli("sandbox", "setup", "--with", NAME, "--find-links", str(wheels), "--no-index")
    assert done.returncode == 0, done.stderr
    env = home / "envs" / library_set([NAME]).name
    assert (env / "agentic-vision-layer.json").is_file()
    return env


def one_line(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


# -- naming and the tool description ----------------------------------------------------------------


def test_a_set_is_named_by_its_content_whatever_the_spelling():
    a = library_set(["Shapely >= 2", "my_pkg==1.0"])
    b = library_set(["my-pkg == 1.0", "shapely>=2"])
    assert a == b and a.name == b.name and a.name.startswith("libs-")
    assert a.requirements == ("my-pkg==1.0", "shapely>=2")
    assert library_set(["my-pkg==1.1"]).name != library_set(["my-pkg==1.0"]).name
    assert a.command("setup") == "agentic-vision sandbox setup --with my-pkg==1.0 --with 'shapely>=2'"


@pytest.mark.parametrize("specs, message", [
    (["foo=1"], "'foo=1' is not a package requirement"),
    (["./dist/foo.whl"], "give the package name (NAME or NAME==VERSION) and the folder of its wheels with --find-links DIR"),
    (["foo==1", "Foo==2"], "foo is asked for twice"),
])
def test_bad_requirements_are_refused_before_anything(specs, message):
    with pytest.raises(InputError) as caught:
        Agent(model=GeminiModel("gemini-3-flash-preview", api_key="k"), libraries=specs)
    assert message in str(caught.value)


def test_the_tool_description_lists_the_extras_apart_from_the_hosted_libraries():
    extras = [{"name": NAME, "version": VERSION, "imports": [NAME]}]
    text = tool_description([], ["numpy", "PIL", NAME], 30, extras)
    assert "Libraries available: numpy, PIL." in text
    assert f"Also installed for this task: {NAME} {VERSION} (import {NAME})." in text
    assert "Also installed" not in tool_description([], ["numpy"], 30)


def test_a_bench_report_names_the_extra_libraries():
    from agentic_vision.bench.report import render_report

    meta = {"suite": "s", "model": "m", "modes": ["local"], "sandbox": "local", "libraries": ["scikit-image"]}
    assert "sandbox: local; extra libraries: scikit-image." in render_report([], meta, {}, "")
    assert "extra libraries" not in render_report([], {**meta, "libraries": []}, {}, "")


def test_pip_failures_read_as_one_line():
    libs = library_set(["nosuch"])
    offline = ("WARNING: Retrying (Retry(total=0)) after connection broken by 'NewConnectionError(...: Failed to "
               "establish a new connection: [Errno 101] Network is unreachable')': /simple/nosuch/\n"
               "ERROR: Could not find a version that satisfies the requirement nosuch (from versions: none)\n"
               "ERROR: No matching distribution found for nosuch\n")
    assert pip_failure(offline, libs).startswith("cannot install nosuch: the package index cannot be reached (no network?)")
    unknown = offline.splitlines(keepends=True)[1:]
    assert pip_failure("".join(unknown), libs).startswith("cannot install nosuch: no such package or version on the index")


# -- the local sandbox -------------------------------------------------------------------------------


def test_setup_layers_the_package_on_the_default_environment_without_copying_it(layer, home, wheels):
    stamp = json.loads((layer / "agentic-vision-layer.json").read_text())
    assert stamp["requested"] == [NAME]
    assert stamp["installed"] == [{"distribution": NAME, "version": VERSION, "requested": True, "imports": [NAME]}]
    size = sum(f.stat().st_size for f in layer.rglob("*") if f.is_file() and not f.is_symlink())
    assert size < 1_000_000  # the 3 GB default environment is reached, not copied
    real_site = next((home / "sandbox-env").resolve().glob("lib/python3*/site-packages"))
    assert not (real_site / NAME).exists()  # the default environment is unchanged
    again = cli("sandbox", "setup", "--with", NAME, "--find-links", str(wheels), "--no-index")
    assert again.returncode == 0 and "is up to date" in again.stderr


def test_exec_with_libraries_imports_it_and_the_default_does_not(layer):
    done = cli("exec", "--sandbox", "local", "--no-guard", "--libraries", NAME,
               HELLO + "\nimport numpy, PIL\nprint(numpy.__version__ != '')")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello from avlibtest\nTrue\n"
    plain = cli("exec", "--sandbox", "local", "--no-guard", HELLO)
    assert plain.returncode == 1
    assert f"ModuleNotFoundError: No module named '{NAME}'" in plain.stdout


def test_a_set_not_set_up_is_one_line_with_the_command(home):
    done = cli("exec", "--sandbox", "local", "--libraries", f"{NAME}==9.9", "print(1)")
    assert done.returncode == 3
    assert one_line(done) == (f"agentic-vision: the libraries {NAME}==9.9 are not set up for the local sandbox: "
                              f"run 'agentic-vision sandbox setup --with {NAME}==9.9'")


def test_a_set_made_on_an_older_default_environment_is_one_line_with_the_command(home):
    env = home / "envs" / library_set(["stalepkg"]).name
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").symlink_to(sys.executable)
    (env / "agentic-vision-layer.json").write_text(json.dumps({"base": "0" * 64, "requested": ["stalepkg"],
                                                               "installed": []}))
    done = cli("exec", "--sandbox", "local", "--libraries", "stalepkg", "print(1)")
    assert done.returncode == 3
    assert one_line(done) == ("agentic-vision: the libraries stalepkg were set up on an older sandbox environment: "
                              "run 'agentic-vision sandbox setup --with stalepkg' again")


def test_ask_with_a_set_not_set_up_stops_before_the_model_is_asked(home, tmp_path):
    image = tmp_path / "x.png"
    from PIL import Image
    Image.new("RGB", (8, 8)).save(image)
    with ScriptedGemini([]) as server:
        done = cli("ask", "--sandbox", "local", "--libraries", "otherpkg", str(image), "What is it?",
                   env={"GEMINI_API_KEY": "k", "GOOGLE_GEMINI_BASE_URL": server.url})
        assert server.requests == []
    assert done.returncode == 3
    assert "run 'agentic-vision sandbox setup --with otherpkg'" in one_line(done)


def test_agent_with_libraries_runs_the_package_and_tells_the_model(layer):
    seen = {}

    def answer(request):
        seen["tool"] = request.body["tools"][0]["functionDeclarations"][0]["description"]
        seen["output"] = request.function_responses()[-1]["response"]["output"]
        return reply.text("It says hello.")

    script = [reply.call("run_python", {"code": HELLO}), answer]
    with ScriptedGemini(script) as server:
        gemini = GeminiModel("gemini-3-flash-preview", api_key="k", base_url=server.url, retries=0)
        result = Agent(model=gemini, sandbox="local", libraries=[NAME], guard=False).run("Run it.")
    assert result.answer == "It says hello."
    assert seen["output"] == "hello from avlibtest\n"
    assert f"Also installed for this task: {NAME} {VERSION} (import {NAME})." in seen["tool"]


def test_agent_with_a_set_not_set_up_raises_one_line_before_the_model(home):
    with ScriptedGemini([]) as server:
        gemini = GeminiModel("gemini-3-flash-preview", api_key="k", base_url=server.url, retries=0)
        with pytest.raises(SandboxUnavailable) as caught:
            Agent(model=gemini, sandbox="local", libraries=["otherpkg>=2"]).run("Hi")
        assert server.requests == []
    assert str(caught.value) == ("the libraries otherpkg>=2 are not set up for the local sandbox: "
                                 "run \"agentic-vision sandbox setup --with 'otherpkg>=2'\"")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("args, env, message", [
    (["--with", "nosuchpkg", "--find-links", "WHEELS", "--no-index"], {},
     "cannot install nosuchpkg: it is not in the --find-links folders"),
    (["--with", "nosuchpkg", "--index-url", "INDEX"], {"PIP_RETRIES": "1"},
     "cannot install nosuchpkg: the package index cannot be reached (no network?); nothing was installed"),
    (["--with", "numpy==1.0", "--find-links", "WHEELS", "--no-index"], {},
     "cannot install numpy==1.0: it conflicts with the sandbox's libraries, which stay at the hosted versions "
     "(asked for numpy==1.0; the sandbox has numpy=="),
])
def test_a_pip_failure_is_one_line_and_leaves_nothing_behind(home, wheels, args, env, message):
    args = [a.replace("WHEELS", str(wheels)).replace("INDEX", f"http://127.0.0.1:{closed_port()}/simple") for a in args]
    before = set((home / "envs").glob("*")) if (home / "envs").exists() else set()
    done = cli("sandbox", "setup", "--quiet", *args, env=env)
    assert done.returncode == 2
    assert one_line(done).startswith(f"agentic-vision: {message}")
    assert set((home / "envs").glob("*")) == before


def test_a_requirements_file_and_its_refusals(home, wheels, tmp_path):
    good = tmp_path / "requirements.txt"
    good.write_text(f"# extras\n{NAME}  # the test's own\n\n")
    done = cli("sandbox", "setup", "--requirements", str(good), "--find-links", str(wheels), "--no-index")
    assert done.returncode == 0, done.stderr
    assert "is up to date" in done.stderr  # the same set as --with avlibtest: the same environment
    bad = tmp_path / "bad.txt"
    bad.write_text(f"--index-url http://example.invalid/simple\n{NAME}\n")
    refused = cli("sandbox", "setup", "--requirements", str(bad))
    assert refused.returncode == 2
    assert one_line(refused) == (f"agentic-vision: {bad}:1: pip options (--index-url) are not read from the file: give "
                                 "them as command options (--find-links DIR, --index-url URL, --no-index) or list the "
                                 "requirements")


def test_sandbox_info_shows_each_environment_its_size_and_extras(layer):
    done = cli("sandbox", "info", "--json")
    assert done.returncode == 0, done.stderr
    envs = {e["name"]: e for e in json.loads(done.stdout)["environments"]}
    assert envs["default"]["size_bytes"] > 100_000_000 and envs["default"]["installed"] == []
    extra = envs[layer.name]
    assert extra["requested"] == [NAME] and extra["current"]
    assert [(d["distribution"], d["version"]) for d in extra["installed"]] == [(NAME, VERSION)]
    assert 0 < extra["size_bytes"] < 1_000_000
    text = cli("sandbox", "info")
    assert text.returncode == 0, text.stderr
    line = next(line for line in text.stdout.splitlines() if layer.name in line)
    assert f"+ {NAME} {VERSION} (--libraries {NAME})" in line


# -- the Docker sandbox -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docker_base(home):
    """A test-only tag of the default image as the base; the extras images made on it are removed after."""
    require_docker()
    from agentic_vision.sandboxing.docker_engine import connect, image_name

    engine = connect()
    tag = f"agentic-vision/sandbox:libstest-{uuid.uuid4().hex[:8]}"
    repo, _, name = tag.rpartition(":")
    engine.api.tag(image_name(), repo, name)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("AGENTIC_VISION_DOCKER_IMAGE", tag)
            yield engine, tag
    finally:
        for image in engine.api.images(name=repo):
            for t in image.get("RepoTags") or []:
                if t.startswith(tag):  # the test tag and the extras images made on it
                    engine.api.remove_image(t)
        engine.client.close()


@pytest.fixture(scope="module")
def extras_image(docker_base, wheels):
    engine, tag = docker_base
    done = cli("sandbox", "build", "--with", NAME, "--find-links", str(wheels), "--no-index")
    assert done.returncode == 0, done.stderr
    name = f"{tag}-{library_set([NAME]).name}"
    assert f"done: {name}" in done.stderr
    return name


@pytest.mark.docker
def test_docker_build_with_makes_a_thin_image_and_exec_imports_it(docker_base, extras_image, wheels):
    engine, tag = docker_base
    base, extra = engine.api.inspect_image(tag), engine.api.inspect_image(extras_image)
    assert extra["Size"] - base["Size"] < 5_000_000  # a thin layer on the default image
    assert extra["Config"]["Labels"]["org.agentic-vision.libraries.base"] == base["Id"]
    done = cli("exec", "--sandbox", "docker", "--no-guard", "--libraries", NAME, HELLO)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello from avlibtest\n"
    plain = cli("exec", "--sandbox", "docker", "--no-guard", HELLO)
    assert f"ModuleNotFoundError: No module named '{NAME}'" in plain.stdout
    again = cli("sandbox", "build", "--with", NAME, "--find-links", str(wheels), "--no-index")
    assert again.returncode == 0 and "is current: nothing to build" in again.stderr


@pytest.mark.docker
def test_sandbox_check_with_libraries_imports_the_extras_too(extras_image):
    done = cli("sandbox", "check", "--json", "--libraries", NAME)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["image"] == extras_image
    assert report["libraries"][NAME] == {"available": True, "version": VERSION}
    assert report["libraries"]["numpy"]["available"] and report["missing"] == []


@pytest.mark.docker
def test_docker_agent_with_libraries(extras_image):
    seen = {}

    def answer(request):
        seen["tool"] = request.body["tools"][0]["functionDeclarations"][0]["description"]
        seen["output"] = request.function_responses()[-1]["response"]["output"]
        return reply.text("Hello.")

    with ScriptedGemini([reply.call("run_python", {"code": HELLO}), answer]) as server:
        gemini = GeminiModel("gemini-3-flash-preview", api_key="k", base_url=server.url, retries=0)
        result = Agent(model=gemini, sandbox="docker", libraries=[NAME], guard=False,
                       sandbox_options={"pool_size": 0}).run("Run it.")
    assert result.answer == "Hello." and result.sandbox == "docker"
    assert seen["output"] == "hello from avlibtest\n"
    assert f"Also installed for this task: {NAME} {VERSION} (import {NAME})." in seen["tool"]


@pytest.mark.docker
def test_docker_set_not_built_is_one_line_with_the_command(docker_base):
    done = cli("exec", "--sandbox", "docker", "--libraries", "otherpkg", "print(1)")
    assert done.returncode == 3
    line = one_line(done)
    assert line.startswith("agentic-vision: the libraries otherpkg are not built for the Docker sandbox (no image ")
    assert line.endswith("run 'agentic-vision sandbox build --with otherpkg'")


@pytest.mark.docker
def test_docker_build_failure_is_one_line_and_leaves_no_image(docker_base, wheels):
    engine, tag = docker_base
    done = cli("sandbox", "build", "--with", "nosuchpkg", "--find-links", str(wheels), "--no-index")
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.startswith("agentic-vision:")]
    assert lines == ["agentic-vision: cannot install nosuchpkg: it is not in the --find-links folders (and --no-index "
                     "uses no index); no image was built. Check the name and version, or put its wheel there"]
    # The layers this build made (not the base, not cache hits) are removed with it.
    made, cached = [], False
    for line in done.stderr.splitlines():
        if "---> " not in line:
            continue
        what = line.split("---> ")[1].strip()
        if what == "Using cache":
            cached = True
        elif all(c in "0123456789abcdef" for c in what):
            if not cached:
                made.append(what)
            cached = False
    base_id = engine.api.inspect_image(tag)["Id"]
    made = [m for m in made if not base_id.removeprefix("sha256:").startswith(m)]
    assert made  # the build got as far as its RUN step
    left = []
    for step in made:
        try:
            engine.api.inspect_image(step)
            left.append(step)
        except docker.errors.ImageNotFound:
            pass
    assert left == []
    assert not engine.api.images(name=f"{tag}-{library_set(['nosuchpkg']).name}")


@pytest.mark.docker
def test_sandbox_info_shows_the_extras_image(extras_image):
    done = cli("sandbox", "info", "--json")
    assert done.returncode == 0, done.stderr
    images = {i["image"]: i for i in json.loads(done.stdout)["docker"]["extras"]}
    mine = images[extras_image]
    assert mine["requested"] == [NAME]
    assert [(d["distribution"], d["version"]) for d in mine["installed"]] == [(NAME, VERSION)]
    assert 0 < mine["layer_bytes"] < 5_000_000


# -- the servers and the bench --------------------------------------------------------------------------


def test_mcp_server_with_libraries_runs_the_package_and_lists_it(layer, tmp_path):
    from mcp_support import stdio_params, sync_client, text_of

    env = {"AGENTIC_VISION_HOME": os.environ["AGENTIC_VISION_HOME"]}
    with sync_client(stdio_params("--no-guard", "--libraries", NAME, cwd=tmp_path, env=env)) as client:
        result = client.call("run_python", {"code": HELLO})
        assert not result.is_error, text_of(result)
        assert "hello from avlibtest" in text_of(result)
        libraries = {entry["name"]: entry for entry in json.loads(client.read("agentic-vision://libraries"))}
    assert libraries[NAME] == {"name": NAME, "import": NAME, "hosted": False, "available": True, "version": VERSION}
    assert libraries["numpy"]["available"]


@pytest.mark.parametrize("command", [
    ["mcp", "--sandbox", "local", "--libraries", "otherpkg"],
    ["serve", "--sandbox", "local", "--port", "0", "--libraries", "otherpkg"],
    ["bench", "--sandbox", "local", "--modes", "local", "--limit", "1", "--out", "OUT", "--libraries", "otherpkg"],
])
def test_servers_and_bench_with_a_set_not_set_up_stop_with_one_line(home, tmp_path, command):
    command = [a.replace("OUT", str(tmp_path / "bench")) for a in command]
    with ScriptedGemini([]) as server:
        done = cli(*command, env={"GEMINI_API_KEY": "k", "GOOGLE_GEMINI_BASE_URL": server.url}, stdin="")
        assert [r for r in server.requests if r.method == "generateContent"] == []
    assert done.returncode == 3
    assert one_line(done) == ("agentic-vision: the libraries otherpkg are not set up for the local sandbox: "
                              "run 'agentic-vision sandbox setup --with otherpkg'")


def test_gateway_with_libraries_runs_the_package_for_unchanged_client_code(layer):
    from google import genai
    from google.genai import types

    from gateway_helpers import gateway

    seen = {}

    def answer(request):
        seen["tool"] = request.body["tools"][0]["functionDeclarations"][0]["description"]
        return reply.text("Done.")

    with ScriptedGemini([reply.call("run_python", {"code": HELLO}), answer]) as upstream, \
            gateway(upstream, libraries=[NAME], guard=False, warm_sandboxes=0) as gw:
        client = genai.Client(api_key="client-key", http_options=types.HttpOptions(base_url=gw.url))
        response = client.models.generate_content(
            model="gemini-3-flash-preview", contents=["Run it."],
            config=types.GenerateContentConfig(tools=[types.Tool(code_execution=types.ToolCodeExecution())]))
    outputs = [p.code_execution_result.output for p in response.candidates[0].content.parts if p.code_execution_result]
    assert outputs == ["hello from avlibtest\n"]
    assert f"Also installed for this task: {NAME} {VERSION} (import {NAME})." in seen["tool"]


def test_serve_with_libraries_says_so_when_it_starts(layer):
    server = subprocess.Popen([sys.executable, "-m", "agentic_vision", "serve", "--sandbox", "local", "--port", "0",
                               "--libraries", NAME], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "GEMINI_API_KEY": "k"})
    try:
        line = server.stderr.readline()
    finally:
        server.terminate()
        server.wait(timeout=30)
        server.stderr.close()
    assert "agentic-vision gateway on http://127.0.0.1:" in line
    assert f"(sandbox local, with {NAME}; Gemini at" in line
