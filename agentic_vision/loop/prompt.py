"""What the model is told: the system instruction and the tool description.

The tool description tells the truth about this sandbox: the files in the
working directory, the libraries that actually import there, how images get
back to the model, the time limit, and that state persists.
"""

from __future__ import annotations

TOOL_NAME = "run_python"

SYSTEM = """\
You answer questions about images. You can look closer by writing Python that runs in a \
sandbox with the image files in its working directory: crop and zoom into regions, rotate, \
enhance contrast, draw boxes or labels, count objects, measure, compute and plot. Every image \
your code shows comes back to you to look at. Think about what you need to see or compute, \
run code when looking closer or measuring would make the answer more reliable, check what \
comes back, and stop once you are sure. Then give the final answer in plain text, short and \
direct, without code."""


def human_size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"


def tool_description(files: list[tuple[str, int, str]], libraries: list[str], timeout: float,
                     extras: list[dict] = ()) -> str:
    """``files``: (name, size in bytes, note such as "4000x3000 JPEG"); ``extras``: specs of the
    extra libraries installed on top of the hosted list (extras.Manifest.specs) that import."""
    lines = [
        "Runs Python 3 code in a sandbox (no network, no package installs) and returns its "
        "printed output and the images it shows.",
        "",
        "Files in the working directory:",
    ]
    if files:
        for name, size, note in files:
            lines.append(f"- {name} ({human_size(size)}{', ' + note if note else ''})")
    else:
        lines.append("- (none)")
    lines += [
        "",
        "Images you see are the originals at full resolution in these files; what you were shown "
        "may be downscaled, so crop the file to see fine detail.",
        "",
        "To see an image, any of: display(img) (a PIL image, numpy array or matplotlib figure), "
        "img.show(), leave a matplotlib figure open, or save an image file in the working "
        "directory. cv2 arrays are BGR: cv2.imshow converts them; convert before display().",
        "Variables and imports persist between runs, like a notebook; print what you need to read.",
        f"Each run is stopped after {timeout:g} seconds; a stopped run loses the variables.",
    ]
    extra_names = {spec["name"] for spec in extras}
    usual = [name for name in libraries if name not in extra_names]
    if usual:
        lines.append("Libraries available: " + ", ".join(usual) + ".")
    if extras:
        listed = ", ".join(f"{spec['name']} {spec['version']} (import {', '.join(spec['imports'])})" for spec in extras)
        lines.append(f"Also installed for this task: {listed}.")
    return "\n".join(lines)


NO_MORE_CODE = (
    "No more code will run: {why}. Answer the question now from what you have seen, "
    "in plain text."
)

RESUMED = ("This conversation was resumed: the sandbox was restarted with the input files, so variables and "
           "files that earlier code made are gone.")
