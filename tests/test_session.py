"""What a sandbox session does, on every sandbox kind: the semantics of runs."""

from __future__ import annotations

import os
import signal
import textwrap
import threading
import time
import uuid

import pytest

from agentic_vision import SandboxUnavailable
from agentic_vision.sandboxing import session as session_module
from agentic_vision.sandboxing.executors import get_executor
from agentic_vision.sandboxing.libraries import available_libraries
from agentic_vision.sandboxing.session import Session
from conftest import png_size, sample


def run(session, code: str):
    return session.run(textwrap.dedent(code))


def test_state_persists_between_runs_like_a_notebook(open_sandbox):
    session = open_sandbox()
    assert run(session, "x = 20\ndef double(v):\n    return 2 * v").outcome == "OUTCOME_OK"
    result = run(session, "print(double(x) + 2)")
    assert result.outcome == "OUTCOME_OK"
    assert result.output == "42\n"


def test_nothing_persists_across_sessions(open_sandbox):
    first = open_sandbox()
    run(first, "secret_value = 7\nopen('note.txt', 'w').write('x')")
    second = open_sandbox()
    result = run(second, """
        import os
        try:
            secret_value
            seen = True
        except NameError:
            seen = False
        print(seen, os.path.exists('note.txt'))
    """)
    assert result.output == "False False\n"


def test_input_files_sit_in_the_working_directory(open_sandbox, photo):
    session = open_sandbox(inputs=[photo])
    result = run(session, """
        from PIL import Image
        import os
        img = Image.open('photo.jpg')
        print(sorted(os.listdir('.')), img.size, img.format)
    """)
    assert result.outcome == "OUTCOME_OK", result.output
    assert result.output == "['photo.jpg'] (640, 427) JPEG\n"


def test_csv_input_read_with_pandas(open_sandbox):
    session = open_sandbox(inputs=[sample("msft.csv")])
    result = run(session, """
        import pandas as pd
        df = pd.read_csv('msft.csv')
        print(len(df), list(df.columns)[:2], round(float(df['Close'].max()), 2))
    """)
    assert result.outcome == "OUTCOME_OK", result.output
    assert result.output == "65 ['Date', 'Open'] 29.96\n"


def test_images_come_back_by_all_three_routes(open_sandbox, photo):
    session = open_sandbox(inputs=[photo])
    result = run(session, """
        from PIL import Image
        import matplotlib.pyplot as plt
        img = Image.open('photo.jpg')
        img.crop((100, 100, 300, 250)).show()            # Image.show()
        display(img.resize((64, 96)))                     # display()
        plt.figure(figsize=(2, 2)); plt.plot([1, 3, 2])  # an open figure
        img.rotate(90, expand=True).save('rotated.png')   # a file written
    """)
    assert result.outcome == "OUTCOME_OK", result.output
    sizes = [(im.width, im.height) for im in result.images]
    assert sizes[0] == (200, 150)
    assert sizes[1] == (64, 96)
    assert (427, 640) in sizes  # the rotated file
    assert len(result.images) == 4
    for image in result.images:
        assert image.mime_type == "image/png"
        assert png_size(image.data) == (image.width, image.height)
    # Figures are closed after the run: a second run returns no stale figure.
    assert run(session, "print('again')").images == []


def test_cv2_imshow_and_numpy_display(open_sandbox, photo):
    session = open_sandbox(inputs=[photo])
    result = run(session, """
        import cv2, numpy as np
        bgr = cv2.imread('photo.jpg')
        cv2.imshow('crop', bgr[0:50, 0:80])
        display(np.zeros((10, 20), dtype=np.float32))
    """)
    assert result.outcome == "OUTCOME_OK", result.output
    assert [(i.width, i.height) for i in result.images] == [(80, 50), (20, 10)]


def test_unchanged_input_is_not_returned_but_an_overwritten_one_is(open_sandbox, photo):
    session = open_sandbox(inputs=[photo])
    assert run(session, "from PIL import Image\nImage.open('photo.jpg').size").images == []
    result = run(session, "Image.open('photo.jpg').convert('L').save('photo.jpg')")
    assert len(result.images) == 1 and result.images[0].mime_type == "image/jpeg"


def test_image_count_is_capped_with_a_note(open_sandbox):
    session = open_sandbox()
    result = run(session, """
        from PIL import Image
        for i in range(13):
            display(Image.new('RGB', (8, 8), (i * 10, 0, 0)))
    """)
    assert len(result.images) == 10
    assert "3 more image(s) not returned" in result.output


def test_an_exception_gives_its_traceback(open_sandbox):
    session = open_sandbox()
    result = run(session, "print('before')\ndef f():\n    return {}['missing']\nf()")
    assert result.outcome == "OUTCOME_FAILED"
    assert result.output.startswith("before\nTraceback (most recent call last):")
    assert 'line 3, in f' in result.output and "KeyError: 'missing'" in result.output
    assert "interpreter.py" not in result.output  # only the model's own frames


@pytest.mark.parametrize("guard", [True, False], ids=["guarded", "unguarded"])
def test_exit_codes_mean_what_they_mean_in_python(open_sandbox, guard):
    session = open_sandbox(guard=guard)
    for code in ("sys.exit()", "sys.exit(0)", "sys.exit(None)", "raise SystemExit", "exit()"):
        result = run(session, f"import sys\nkept = {code!r}\nprint('result', 42)\n{code}\nprint('not reached')")
        assert (result.outcome, result.output) == ("OUTCOME_OK", "result 42\n"), code
        assert run(session, "print(kept)").output == f"{code}\n"  # variables persist as after any run
    for code, shown in (("sys.exit(2)", "SystemExit: 2"), ("sys.exit('no coins found')", "SystemExit: no coins found")):
        result = run(session, f"import sys\nprint('partial')\n{code}")
        assert (result.outcome, result.output) == ("OUTCOME_FAILED", f"partial\n{shown}\n"), code


def test_a_syntax_error_is_a_failed_run(open_sandbox):
    session = open_sandbox()
    result = run(session, "print('unclosed'")
    assert result.outcome == "OUTCOME_FAILED"
    assert "SyntaxError" in result.output
    assert run(session, "print('still fine')").output == "still fine\n"


def test_huge_output_is_bounded_with_a_note(open_sandbox):
    session = open_sandbox()
    result = run(session, "for i in range(200000):\n    print('line', i)")
    assert result.outcome == "OUTCOME_OK"
    assert result.output.startswith("line 0\nline 1\n")
    assert len(result.output) < 70 * 1024
    assert "output truncated" in result.output


def test_output_from_c_level_and_child_processes_is_captured(open_sandbox):
    session = open_sandbox(guard=False)
    result = run(session, "import os\nos.system('echo from-a-child')\nprint('from-python')")
    assert "from-a-child" in result.output and "from-python" in result.output


def test_timeout_keeps_partial_output_and_restarts(open_sandbox, photo):
    session = open_sandbox(inputs=[photo], timeout=2)
    run(session, "kept = 1")
    result = run(session, "import time\nprint('started', flush=True)\nwhile True:\n    time.sleep(0.01)")
    assert result.outcome == "OUTCOME_DEADLINE_EXCEEDED"
    assert result.output.startswith("started\n")
    assert "state" not in result.output or "lost" in result.output
    assert "variables and imports from earlier runs are lost" in result.output
    assert 1.9 < result.duration_s < 10
    after = run(session, "import os\ntry:\n    kept\n    print(True, os.listdir('.'))\nexcept NameError:\n    print(False, os.listdir('.'))")
    assert after.outcome == "OUTCOME_OK"
    assert after.output == "False ['photo.jpg']\n"


def test_a_busy_c_loop_is_stopped_too(open_sandbox):
    session = open_sandbox(timeout=1.5)
    result = run(session, "import numpy as np\nwhile True:\n    np.linalg.svd(np.random.rand(300, 300))")
    assert result.outcome == "OUTCOME_DEADLINE_EXCEEDED"
    assert run(session, "print('ok')").output == "ok\n"


def test_a_crash_of_the_worker_is_a_failed_run_not_an_exception(open_sandbox):
    session = open_sandbox(guard=False)
    result = run(session, "import os\nos._exit(3)")
    assert result.outcome == "OUTCOME_FAILED"
    assert "restarted" in result.output
    assert run(session, "print(1 + 1)").output == "2\n"


def test_reopened_input_is_served_from_the_decoded_cache_without_leaking_edits(open_sandbox, photo):
    session = open_sandbox(inputs=[photo])
    result = run(session, """
        from PIL import Image
        import numpy as np, cv2
        a = Image.open('photo.jpg'); a.paste((255, 0, 0), (0, 0, 50, 50))   # edit one copy
        b = Image.open('photo.jpg')
        fresh = Image.open(open('photo.jpg', 'rb'))                            # a file object bypasses the cache
        print(np.array_equal(np.asarray(b), np.asarray(fresh)), b.format, b.size)
        m = cv2.imread('photo.jpg'); m[:] = 0
        print(int(cv2.imread('photo.jpg').sum() > 0))
    """)
    assert result.outcome == "OUTCOME_OK", result.output
    assert result.output == "True JPEG (640, 427)\n1\n"


def test_run_duration_is_measured(open_sandbox):
    session = open_sandbox()
    result = run(session, "import time\ntime.sleep(0.3)")
    assert 0.3 <= result.duration_s < 5


def test_pixel_writes_never_reach_the_cached_input(open_sandbox, photo):
    session = open_sandbox(inputs=[photo])
    result = run(session, """
        from PIL import Image
        import numpy as np
        before = np.asarray(Image.open('photo.jpg')).copy()
        a = Image.open('photo.jpg'); px = a.load(); px[0, 0] = (1, 2, 3)
        b = Image.open('photo.jpg'); b.putpixel((1, 1), (4, 5, 6))
        c = Image.open('photo.jpg'); c.frombytes(bytes(len(c.tobytes())))
        d = Image.open('photo.jpg'); d.paste((9, 9, 9), (0, 0, 10, 10))
        print(a.getpixel((0, 0)), b.getpixel((1, 1)), c.getpixel((5, 5)), d.getpixel((5, 5)))
        print(np.array_equal(before, np.asarray(Image.open('photo.jpg'))))
    """)
    assert result.outcome == "OUTCOME_OK", result.output
    assert result.output == "(1, 2, 3) (4, 5, 6) (0, 0, 0) (9, 9, 9)\nTrue\n"


def test_sessions_opened_from_short_lived_threads_survive_them(open_sandbox):
    import threading

    sessions = []
    threads = [threading.Thread(target=lambda: sessions.append(open_sandbox())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    import time

    time.sleep(0.5)  # a sandbox bound to its starting thread would be dead by now
    for session in sessions:
        assert run(session, "print('alive')").output == "alive\n"


# -- a sandbox that dies or goes silent while it is asked something: one line, never a traceback


def test_a_worker_that_dies_while_listing_libraries_is_sandbox_unavailable_in_one_line(open_sandbox):
    session = open_sandbox(guard=False)
    # The runtime imports each library through importlib.import_module: make that end the process.
    assert run(session, "import importlib, os\nimportlib.import_module = lambda *a, **k: os._exit(7)").ok
    with pytest.raises(SandboxUnavailable) as caught:
        session.libraries
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"the {session.kind} sandbox could not import its libraries: exited with status 7")
    assert run(session, "print(1 + 1)").output == "2\n"  # the next run gets a fresh sandbox


def test_a_worker_silent_while_listing_libraries_is_sandbox_unavailable_in_one_line(open_sandbox, monkeypatch):
    monkeypatch.setattr(session_module, "LIBRARIES_TIMEOUT", 1.0)
    session = open_sandbox(guard=False)
    assert run(session, "import importlib, time\nimportlib.import_module = lambda *a, **k: time.sleep(3600)").ok
    with pytest.raises(SandboxUnavailable) as caught:
        session.libraries
    assert str(caught.value) == f"the {session.kind} sandbox could not import its libraries: no answer within 1 s"
    assert run(session, "print('fresh')").output == "fresh\n"


class KillsTheProbe:
    """The real local sandbox; the second worker it hands over (the library probe of a
    chat's start) is SIGKILLed a second later, while it imports the 37 libraries."""

    kind = "local"
    extras = ()

    def __init__(self, executor) -> None:
        self.executor = executor
        self.cache_key = f"{executor.cache_key}|{uuid.uuid4()}"  # never a cached list
        self.handed = 0

    def acquire(self):
        worker = self.executor.acquire()
        self.handed += 1
        if self.handed == 2:
            threading.Timer(1.0, os.kill, (worker.pid, signal.SIGKILL)).start()
        return worker


def test_a_library_probe_killed_at_chat_start_is_sandbox_unavailable_in_one_line():
    executor = KillsTheProbe(get_executor("local"))
    with Session(executor, [], 30, guard=True) as session:
        with pytest.raises(SandboxUnavailable) as caught:
            available_libraries(session)  # what a chat asks before its first turn
        assert executor.handed == 2
        assert run(session, "print('still here')").output == "still here\n"
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("the local sandbox could not import its libraries: killed by signal SIGKILL")


def test_the_worker_serving_a_session_is_visible_and_replaced_after_a_crash(open_sandbox):
    session = open_sandbox(guard=False)
    # A local worker is a host process; a Docker one is a container (the engine may be remote).
    serving = lambda: session.container if session.kind == "docker" else session.worker_pid  # noqa: E731
    first = serving()
    assert first is not None
    assert (session.container is not None) == (session.kind == "docker")
    assert (session.worker_pid is not None) == (session.kind == "local")
    if session.kind == "local":
        assert os.path.exists(f"/proc/{first}")
    run(session, "import os\nos._exit(3)")
    assert serving() is None  # nothing serves it until the next run
    assert run(session, "print(1)").output == "1\n"
    assert serving() not in (None, first)


def test_interrupt_from_another_thread_stops_the_run_and_restarts(open_sandbox, photo):
    session = open_sandbox(inputs=[photo], timeout=60)
    run(session, "kept = 1")
    threading.Timer(1.0, session.interrupt).start()
    started = time.monotonic()
    result = run(session, "import time\nprint('looping', flush=True)\nwhile True:\n    time.sleep(0.01)")
    assert time.monotonic() - started < 10  # far below the 60 s limit
    assert result.outcome == "OUTCOME_FAILED"
    assert result.output.startswith("looping\n") and "stopped on request" in result.output
    after = run(session, "import os\ntry:\n    kept\n    print(True, os.listdir('.'))\nexcept NameError:\n    print(False, os.listdir('.'))")
    assert after.output == "False ['photo.jpg']\n"


def test_a_closed_session_never_starts_another_sandbox(open_sandbox):
    session = open_sandbox()
    session.close()
    with pytest.raises(SandboxUnavailable, match="closed"):
        session.run("print(1)")
