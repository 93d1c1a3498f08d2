"""``python -m agentic_vision.bench ...``: the bench command on its own."""

from ..cli.bench import bench_command

bench_command(prog_name="agentic-vision bench")
