"""Generated tasks, reproducible from a seed: detail a model has to go and get.

* ``zoom``: a 4000x3000 canvas made from a real photo with a small printed
  label carrying a code word (about 8 px high once the image is downscaled for
  the model: it needs a crop to read);
* ``count``: small red squares scattered over a large greyscale photo;
* ``rotate``: a word printed at an angle (needs a rotation to read reliably);
* ``table``: a dense table of numbers (a cell, a column sum, the row of a
  column's maximum);
* ``chart``: a bar chart without value labels (the top category, how many
  bars pass a line, a difference read off the axis).

``zoom`` and ``rotate`` tasks carry ``evidence_boxes``: the label, the word.

Task ids are ``gen-s{seed}-{kind}-{n}``; the same seed gives the same ids,
questions, answers and pixels.  Images are written once into
``cache_dir/generated-v1-seed{seed}/``.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from .samples import sample_path
from .tasks import Task

VERSION = "v1"
WORDS = [
    "HERON", "MARLIN", "KESTREL", "OTTER", "BADGER", "FALCON", "LYNX", "PLOVER", "WALRUS", "BISON",
    "CONDOR", "GECKO", "IBEX", "JACKAL", "MAGPIE", "NARWHAL", "OCELOT", "PUFFIN", "QUOKKA", "RAVEN",
    "TAPIR", "URCHIN", "VIPER", "WOMBAT", "YAK", "ZEBRA", "ALPACA", "BEAVER", "CHEETAH", "DINGO",
]
READ_WORDS = [
    "GARDEN", "WINDOW", "SILVER", "PLANET", "ORANGE", "BRIDGE", "CASTLE", "FOREST", "HARBOR", "LANTERN",
    "MEADOW", "PEBBLE", "RIBBON", "SADDLE", "TUNNEL", "VELVET", "WINTER", "ANCHOR", "BUTTON", "CANDLE",
]
CATEGORIES = ["Ash", "Birch", "Cedar", "Elm", "Fir", "Hazel", "Larch", "Maple", "Oak", "Pine", "Rowan",
              "Spruce", "Teak", "Willow", "Yew", "Alder"]
COUNTS = {"zoom": 4, "count": 2, "rotate": 3, "table": 3, "chart": 3}
# Real photos to build canvases from: scikit-image's first, then matplotlib's.
PHOTOS = [("skimage", "coffee.png"), ("skimage", "astronaut.png"), ("skimage", "motorcycle_left.png"),
          ("skimage", "chelsea.png"), ("skimage", "rocket.jpg"), ("mpl", "grace_hopper.jpg")]


def font(size: int, bold: bool = True) -> ImageFont.FreeTypeFont:
    try:
        import matplotlib  # heavy, and optional: only for its fonts

        name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name), size)
    except (ImportError, OSError):
        return ImageFont.load_default(size=size)


def available_photos() -> list[Path]:
    found = []
    for source, name in PHOTOS:
        path = sample_path(source, name)
        if path is not None:
            found.append(path)
    return found


def _canvas_from_photo(photo: Path, size: tuple[int, int], grey: bool = False) -> Image.Image:
    with Image.open(photo) as img:
        img = ImageOps.exif_transpose(img).convert("RGB")
    img = ImageOps.fit(img, size, Image.LANCZOS)
    if grey:
        img = ImageOps.grayscale(img).convert("RGB")
    return img


# -- the kinds ------------------------------------------------------------------------------


def zoom_task(rng: random.Random, photo: Path, path: Path, task_id: str, word: str) -> Task:
    code = f"{word}-{rng.randint(10, 99)}"
    fx, fy = rng.random(), rng.random()  # where the label goes, as fractions of the free area
    f = font(16)
    left, top, right, bottom = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), code, font=f)
    w, h = right - left + 16, bottom - top + 12
    x, y = 250 + int(fx * (4000 - 500 - w)), 250 + int(fy * (3000 - 500 - h))
    if not path.is_file():
        canvas = _canvas_from_photo(photo, (4000, 3000))
        draw = ImageDraw.Draw(canvas)
        draw.rectangle((x, y, x + w, y + h), fill=(245, 245, 240), outline=(40, 40, 40), width=2)
        draw.text((x + 8 - left, y + 6 - top), code, font=f, fill=(20, 20, 20))
        _save(canvas, path, quality=92)
    return Task(task_id, "Somewhere in this photo there is a small printed label with a code on it. "
                "What is the code? Give it exactly as printed.", code, [path], "exact",
                meta={"category": "zoom", "generated": True},
                evidence=[{"image": path.name, "box": [x, y, x + w + 1, y + h + 1]}])  # the label, its outline included


def count_task(rng: random.Random, photo: Path, path: Path, task_id: str) -> Task:
    n = rng.randint(6, 14)
    spots: list[tuple[int, int]] = []
    while len(spots) < n:
        x, y = rng.randint(120, 3000 - 140), rng.randint(120, 2250 - 140)
        if all(abs(x - a) > 90 or abs(y - b) > 90 for a, b in spots):
            spots.append((x, y))
    if not path.is_file():
        canvas = _canvas_from_photo(photo, (3000, 2250), grey=True)
        draw = ImageDraw.Draw(canvas)
        for x, y in spots:
            draw.rectangle((x - 2, y - 2, x + 18, y + 18), fill=(255, 255, 255))
            draw.rectangle((x, y, x + 16, y + 16), fill=(230, 0, 0))
        _save(canvas, path, quality=92)
    return Task(task_id, "How many small red squares are there in this image?", n, [path], "number",
                meta={"category": "count", "generated": True})


def rotate_task(rng: random.Random, path: Path, task_id: str, word: str) -> Task:
    angle = rng.choice([90, 120, 150, 180, 210, 240, 270])
    dx, dy = rng.randint(-150, 150), rng.randint(-100, 100)
    f = font(110)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left, top, right, bottom = probe.textbbox((0, 0), word, font=f)
    tile = Image.new("RGBA", (right - left + 40, bottom - top + 40), (0, 0, 0, 0))
    ImageDraw.Draw(tile).text((20 - left, 20 - top), word, font=f, fill=(25, 35, 60, 255))
    tile = tile.rotate(angle, expand=True, resample=Image.BICUBIC)
    at = ((1600 - tile.width) // 2 + dx, (1200 - tile.height) // 2 + dy)
    if not path.is_file():
        canvas = Image.new("RGB", (1600, 1200), (236, 230, 214))
        canvas.paste(tile, at, tile)
        _save(canvas, path)
    ink = tile.getbbox()  # the word's own pixels within the turned tile
    box = [at[0] + ink[0], at[1] + ink[1], at[0] + ink[2], at[1] + ink[3]]
    return Task(task_id, "What word is written in this image? The text may be rotated.", word, [path], "exact",
                meta={"category": "rotate", "generated": True, "angle": angle},
                evidence=[{"image": path.name, "box": box}])


def table_task(rng: random.Random, path: Path, task_id: str, variant: int) -> Task:
    rows, cols = 16, 8
    col_names = [f"Q{c + 1}" for c in range(cols)]
    row_names = [f"R{r + 1}" for r in range(rows)]
    values = [[rng.randint(100, 999) for _ in range(cols)] for _ in range(rows)]
    c = rng.randrange(cols)
    column = [values[r][c] for r in range(rows)]
    if variant == 0:
        r = rng.randrange(rows)
        question = f"In the table, what is the value in row {row_names[r]}, column {col_names[c]}?"
        answer, match = values[r][c], "number"
    elif variant == 1:
        question = f"What is the sum of all values in column {col_names[c]} of the table?"
        answer, match = sum(column), "number"
    else:
        top = max(column)
        while column.count(top) > 1:  # make the maximum unique
            values[column.index(top)][c] -= 1
            column = [values[r][c] for r in range(rows)]
            top = max(column)
        question = f"Which row of the table (R1 to R{rows}) has the largest value in column {col_names[c]}?"
        answer, match = row_names[column.index(top)], "exact"
    if not path.is_file():
        from matplotlib.figure import Figure  # heavy, optional: only for these tasks

        fig = Figure(figsize=(9, 6.5), dpi=200)
        ax = fig.add_subplot()
        ax.axis("off")
        table = ax.table(cellText=[[str(v) for v in row] for row in values], rowLabels=row_names,
                         colLabels=col_names, loc="center", cellLoc="center")
        table.auto_set_font_size(False)
        table.set_fontsize(7)
        table.scale(1, 1.1)
        fig.savefig(path, facecolor="white")
    return Task(task_id, question, answer, [path], match, meta={"category": "table", "generated": True})


def chart_task(rng: random.Random, path: Path, task_id: str, variant: int) -> Task:
    names = rng.sample(CATEGORIES, 14)
    while True:
        values = [rng.randint(12, 96) for _ in names]
        ranked = sorted(values, reverse=True)
        if ranked[0] - ranked[1] >= 4 and all(abs(v - 50) > 2 for v in values):
            break
    if variant == 0:
        question = "Which category has the highest bar in this chart?"
        answer, match, tolerance = names[values.index(ranked[0])], "exact", 0.0
    elif variant == 1:
        question = "How many bars are higher than the dashed line at 50?"
        answer, match, tolerance = sum(v > 50 for v in values), "number", 0.0
    else:
        i, j = rng.sample(range(len(names)), 2)
        question = f"Read the values off the axis: what is the value of {names[i]} minus the value of {names[j]}?"
        answer, match, tolerance = values[i] - values[j], "number", 3.0
    if not path.is_file():
        from matplotlib.figure import Figure  # heavy, optional: only for these tasks

        fig = Figure(figsize=(12, 6), dpi=200)
        ax = fig.add_subplot()
        ax.bar(names, values, color="#4a78b5")
        ax.axhline(50, color="#333333", linestyle="--", linewidth=1)
        ax.set_ylim(0, 100)
        ax.set_yticks(range(0, 101, 10))
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        ax.set_title("Measured values by category")
        ax.tick_params(axis="x", labelrotation=45)
        fig.tight_layout()
        fig.savefig(path, facecolor="white")
    return Task(task_id, question, answer, [path], match, tolerance=tolerance,
                meta={"category": "chart", "generated": True})


def _save(img: Image.Image, path: Path, quality: int | None = None) -> None:
    tmp = path.with_name(path.name + ".part")
    if path.suffix == ".jpg":
        img.save(tmp, format="JPEG", quality=quality or 92)
    else:
        img.save(tmp, format="PNG")
    tmp.replace(path)


def generate_tasks(cache_dir: Path, seed: int = 0) -> tuple[list[Task], list[str]]:
    """All generated tasks for ``seed``; returns (tasks, notes)."""
    out = Path(cache_dir) / f"generated-{VERSION}-seed{seed}"
    out.mkdir(parents=True, exist_ok=True)
    notes = []
    photos = available_photos()
    # Words are drawn without replacement, so no two tasks of a seed share one.
    zoom_words = random.Random(f"{seed}:zoom-words").sample(WORDS, COUNTS["zoom"])
    read_words = random.Random(f"{seed}:rotate-words").sample(READ_WORDS, COUNTS["rotate"])
    tasks = []
    for kind, count in COUNTS.items():
        for n in range(1, count + 1):
            task_id = f"gen-s{seed}-{kind}-{n}"
            rng = random.Random(f"{seed}:{kind}:{n}")
            if kind in ("zoom", "count"):
                if not photos:
                    notes.append(f"no sample photos available: the {kind} tasks are left out")
                    break
                # The photo is picked apart from the task's content, so the code word or count
                # of a seed is the same whichever photos this machine has.
                photo = photos[random.Random(f"{seed}:{kind}:{n}:photo").randrange(len(photos))]
                path = out / f"{task_id}-{photo.stem}.jpg"
                if kind == "zoom":
                    tasks.append(zoom_task(rng, photo, path, task_id, zoom_words[n - 1]))
                else:
                    tasks.append(count_task(rng, photo, path, task_id))
            elif kind == "rotate":
                tasks.append(rotate_task(rng, out / f"{task_id}.png", task_id, read_words[n - 1]))
            else:
                try:
                    import matplotlib  # noqa: F401  (optional: these tasks draw with it)
                except ImportError:
                    notes.append(f"matplotlib is not installed: the {kind} tasks are left out")
                    break
                maker = table_task if kind == "table" else chart_task
                tasks.append(maker(rng, out / f"{task_id}.png", task_id, (n - 1) % 3))
    return tasks, notes
