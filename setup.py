"""The wheel carries what `agentic-vision sandbox build` needs outside a checkout.

Dockerfile.sandbox and scripts/make-base-image.sh live at the top of the
repository, which builds from them; the wheel gets copies in
agentic_vision/sandboxing/image_build/ (see runtime_files.image_sources), so an
installed package builds the same image as the checkout it came from.
Everything else is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUILD_FILES = ["Dockerfile.sandbox", "scripts/make-base-image.sh"]


class BuildPyWithImageFiles(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "agentic_vision" / "sandboxing" / "image_build"
        target.mkdir(parents=True, exist_ok=True)
        for name in BUILD_FILES:
            shutil.copy2(ROOT / name, target / Path(name).name)


setup(cmdclass={"build_py": BuildPyWithImageFiles})
