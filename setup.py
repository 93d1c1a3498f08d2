"""The wheel carries what `agentic-vision sandbox build` needs outside a checkout.

Dockerfile.sandbox and the build scripts live at the top of the repository
(they build from it); the wheel gets copies of them in
agentic_vision/sandboxing/image_build/, so an installed package can build the
Docker sandbox image too.  Everything else is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUILD_FILES = ["Dockerfile.sandbox", "scripts/build-sandbox-image.sh", "scripts/start-docker.sh",
               "scripts/make-base-image.sh"]


class BuildPyWithImageFiles(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "agentic_vision" / "sandboxing" / "image_build"
        for name in BUILD_FILES:
            dest = target / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest)


setup(cmdclass={"build_py": BuildPyWithImageFiles})
