"""The asyncio API: the same sandbox and loop from a coroutine, with honest cancellation."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from agentic_vision import Agent, ChatStopped, InputError, aio
from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from conftest import sample


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid: int, within: float = 10) -> bool:
    deadline = time.monotonic() + within
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def test_async_session_streams_output_on_the_event_loop():
    async def main():
        seen = []
        loop = asyncio.get_running_loop()
        ticks = 0

        async def ticker():  # the loop stays free while the code runs
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        async with aio.open_session("local", inputs=[str(sample("coins.png"))], pool_size=0) as session:
            task = asyncio.create_task(ticker())
            result = await session.run(
                "import time\nprint('a', flush=True)\ntime.sleep(1)\nfrom PIL import Image\nprint(Image.open('coins.png').size)",
                on_output=lambda stream, text: seen.append((asyncio.get_running_loop() is loop, stream, text)))
            task.cancel()
        return result, seen, ticks

    result, seen, ticks = asyncio.run(main())
    assert result.ok and result.stdout == "a\n(384, 303)\n"
    assert "".join(text for _, _, text in seen) == result.stdout  # all of it, before the result came back
    assert all(on_loop for on_loop, _, _ in seen)
    assert ticks >= 5


def test_cancelling_a_run_kills_it_and_the_session_carries_on():
    async def main():
        session = await aio.open_session("local", timeout=60, pool_size=0)
        try:
            task = asyncio.create_task(session.run("print('spinning', flush=True)\nwhile True: pass"))
            await asyncio.sleep(1.5)
            pid = session.session.worker_pid
            started = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            waited = time.monotonic() - started
            gone = wait_gone(pid)
            again = await session.run("print('again')")
        finally:
            await session.close()
        return waited, gone, again

    waited, gone, again = asyncio.run(main())
    assert gone  # the sandbox process that ran the loop is dead on the host
    assert waited < 10  # not the 60 s time limit
    assert again.ok and again.stdout == "again\n"


def test_agent_arun_and_an_async_chat():
    script = [reply.call("run_python", {"code": "print(6 * 7)"}), reply.text("42"), reply.text("still 42")]
    with ScriptedGemini(script) as server:
        os.environ["GOOGLE_GEMINI_BASE_URL"] = server.url

        async def main():
            agent = Agent(model="gemini-3-flash-preview", sandbox="local", model_options={"api_key": "k"},
                          sandbox_options={"pool_size": 0})
            async with agent.achat() as chat:
                first = await chat.send("What is six times seven?", images=[str(sample("coins.png"))])
                second = await chat.send("Sure?")
            return first, second

        try:
            first, second = asyncio.run(main())
        finally:
            del os.environ["GOOGLE_GEMINI_BASE_URL"]
    assert first.answer == "42" and first.steps[0].output == "42\n"
    assert second.answer == "still 42"


def test_cancelling_arun_stops_the_sandbox_run_and_the_chat():
    script = [reply.call("run_python", {"code": "import time\ntime.sleep(50)"}), reply.text("never")]
    with ScriptedGemini(script) as server:
        os.environ["GOOGLE_GEMINI_BASE_URL"] = server.url

        async def main():
            running = threading.Event()
            agent = Agent(model="gemini-3-flash-preview", sandbox="local", model_options={"api_key": "k"},
                          sandbox_options={"pool_size": 0}, timeout=60,
                          on_event=lambda event, data: event == "code" and running.set())
            chat = agent.achat()
            task = asyncio.create_task(chat.send("Go", images=[str(sample("coins.png"))]))
            while not running.is_set():
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            pid = chat.chat.session.worker_pid
            started = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            waited = time.monotonic() - started
            gone = wait_gone(pid)
            with pytest.raises(InputError, match="stopped"):
                await chat.send("Again?")
            await chat.aclose()
            return waited, gone, chat.results

        try:
            waited, gone, results = asyncio.run(main())
        finally:
            del os.environ["GOOGLE_GEMINI_BASE_URL"]
    assert gone and waited < 10
    assert results[-1].stop_reason == "interrupted"
    assert len(server.requests) == 1  # the model was not asked again after the cancel
