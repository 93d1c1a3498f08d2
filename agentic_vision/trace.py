"""A run of the agent as one self-contained HTML page.

Everything is inside the file: images as ``data:`` URIs, CSS inline, no
scripts, no fonts or stylesheets from elsewhere; it opens offline and can be
mailed around.  Everything that came from the user or the model is escaped.
"""

from __future__ import annotations

import base64
import io
import os
import secrets
from dataclasses import dataclass
from html import escape
from pathlib import Path

from PIL import Image as PILImage
from pygments.lexers.python import PythonLexer
from pygments.token import Token

from . import evidence
from .loop.result import AgentResult, Step, Turn
from .values import Image, Outcome, StopReason

CSS = """
:root { --bg:#fbfbfa; --card:#fff; --fg:#1d1f23; --muted:#6a6f78; --line:#e3e4e8; --code-bg:#f6f7f9;
  --accent:#3b5bdb; --ok:#1f8a4c; --ok-bg:#e3f6ea; --bad:#c92a2a; --bad-bg:#fde8e8; --warn:#a35f00;
  --warn-bg:#fff2d6; --kw:#8b3fc4; --str:#1a7f37; --com:#8a8f98; --num:#b35900; --bi:#0b63c4; }
@media (prefers-color-scheme: dark) { :root { --bg:#15171b; --card:#1d2025; --fg:#e4e6ea; --muted:#99a0aa;
  --line:#30343b; --code-bg:#171a1e; --accent:#8ea6ff; --ok:#6fd49a; --ok-bg:#173624; --bad:#ff8a8a;
  --bad-bg:#41191b; --warn:#ffc766; --warn-bg:#3b2c10; --kw:#d09cff; --str:#8fd694; --com:#7c828c;
  --num:#ffb870; --bi:#7cc4ff; } }
* { box-sizing:border-box; }
body { margin:0; background:var(--bg); color:var(--fg); line-height:1.55; font-size:15px;
  font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
main { max-width:960px; margin:0 auto; padding:28px 20px 60px; }
h1 { font-size:1.35rem; margin:0 0 4px; } h2 { font-size:1.05rem; margin:0 0 12px; }
h3 { font-size:.95rem; margin:0; display:flex; gap:10px; align-items:center; flex-wrap:wrap; }
code, pre, .mono { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace; font-size:13px; }
.muted { color:var(--muted); } .meta { color:var(--muted); font-size:.85rem; }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:18px 20px; margin:16px 0; }
.summary { display:flex; flex-wrap:wrap; gap:8px 22px; margin-top:12px; font-size:.9rem; }
.summary b { font-variant-numeric:tabular-nums; }
.headline { font-size:1.05rem; margin:14px 0 0; padding:10px 14px; border-left:4px solid var(--accent);
  background:var(--code-bg); border-radius:0 8px 8px 0; white-space:pre-wrap; overflow-wrap:anywhere; }
.text { white-space:pre-wrap; overflow-wrap:anywhere; margin:8px 0; }
.question { font-size:1.1rem; font-weight:500; }
.badge { display:inline-block; font-size:.72rem; font-weight:700; letter-spacing:.04em; padding:2px 8px;
  border-radius:999px; background:var(--code-bg); color:var(--muted); border:1px solid var(--line); }
.badge.ok { color:var(--ok); background:var(--ok-bg); border-color:transparent; }
.badge.bad { color:var(--bad); background:var(--bad-bg); border-color:transparent; }
.badge.warn { color:var(--warn); background:var(--warn-bg); border-color:transparent; }
details.thoughts { color:var(--muted); font-size:.9rem; margin:4px 0 10px; }
details.thoughts summary { cursor:pointer; font-style:italic; }
details.thoughts[open] .peek { display:none; } .peek { font-style:normal; opacity:.8; }
details.thoughts .text { border-left:2px solid var(--line); padding-left:12px; }
.turn > h2 { display:flex; justify-content:space-between; align-items:baseline; }
.step { border:1px solid var(--line); border-radius:8px; margin:14px 0 4px; overflow:hidden; }
.step > h3 { padding:8px 12px; background:var(--code-bg); border-bottom:1px solid var(--line); }
.step > h3 .meta { margin-left:auto; }
.step .body { padding:10px 12px; }
.step.bad { border-left:3px solid var(--bad); } .step.warn { border-left:3px solid var(--warn); }
.step.bad pre.output { border-color:var(--bad-bg); } .step.warn pre.output { border-color:var(--warn-bg); }
pre { margin:0; background:var(--code-bg); border:1px solid var(--line); border-radius:6px; padding:10px 12px;
  overflow:auto; line-height:1.5; }
pre.code { counter-reset:ln; padding-left:0; }
pre.code .ln::before { counter-increment:ln; content:counter(ln); display:inline-block; width:3.2em;
  padding-right:1em; text-align:right; color:var(--muted); opacity:.6; user-select:none; }
pre.output { max-height:22em; white-space:pre-wrap; overflow-wrap:anywhere; }
.label { font-size:.75rem; text-transform:uppercase; letter-spacing:.06em; color:var(--muted); margin:12px 0 4px; }
.kw { color:var(--kw); font-weight:600; } .str { color:var(--str); } .com { color:var(--com); font-style:italic; }
.num { color:var(--num); } .bi { color:var(--bi); }
.images { display:flex; flex-wrap:wrap; gap:12px; margin-top:6px; }
.images figure { margin:0; max-width:100%; } .images figure:has(details[open]) { flex-basis:100%; }
.images summary { list-style:none; cursor:zoom-in; } .images summary::-webkit-details-marker { display:none; }
.images img { display:block; width:auto; height:auto; max-width:220px; max-height:170px; border:1px solid var(--line); border-radius:6px;
  background:repeating-conic-gradient(#8881 0 25%, transparent 0 50%) 0 0/16px 16px; }
.images details[open] img { max-width:100%; max-height:none; cursor:zoom-out; }
.images .cap { font-size:.78rem; color:var(--muted); margin-top:3px; }
.note { margin-top:12px; padding:8px 12px; border-radius:6px; background:var(--warn-bg); color:var(--warn); font-size:.9rem; }
.answer { border:2px solid var(--accent); }
.answer .text { font-size:1.15rem; }
dl.facts { display:grid; grid-template-columns:max-content 1fr; gap:4px 18px; margin:0; font-size:.9rem; }
dl.facts dt { color:var(--muted); } dl.facts dd { margin:0; font-variant-numeric:tabular-nums; }
.files { margin:10px 0 0; padding-left:1.2em; }
.grading { margin-top:12px; font-size:.95rem; display:flex; gap:8px; align-items:baseline; flex-wrap:wrap; }
"""

OUTCOME_LABELS = {
    Outcome.OK: ("OK", "ok"),
    Outcome.FAILED: ("FAILED", "bad"),
    Outcome.DEADLINE_EXCEEDED: ("DEADLINE EXCEEDED", "warn"),
}
STOPS = {StopReason.ANSWERED: "ok", StopReason.MAX_STEPS: "warn", StopReason.RETRIES_EXHAUSTED: "warn",
         StopReason.MODEL_ERROR: "bad", StopReason.INTERRUPTED: "bad"}


@dataclass(frozen=True)
class Grading:
    """A benchmark episode's verdict, shown at the top of its trace."""

    task: str
    mode: str
    expected: str
    correct: bool
    blind: bool = False  # the model never saw the images its code made (local-blind)


BLIND_NOTE = ("Blind mode: the model never saw the images its code made. It read only their text output; "
              "the images below are shown here for you, not as the model saw them.")


def write_trace(result: AgentResult, path) -> Path:
    """Writes the trace of ``result`` to ``path`` atomically (parent folders made); returns the path."""
    return write_trace_html(render_trace(result), path)


def write_trace_html(html: str, path) -> Path:
    """Writes a rendered trace (e.g. one made on another machine) atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(html)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def render_trace(result: AgentResult, grading: Grading | None = None) -> str:
    """The whole page, as a string; ``grading`` (the benchmark's) goes at the top."""
    body = [_header(result, grading), _question(result), evidence.evidence_map(result)]
    body += [_turn(result, turn, i) for i, turn in enumerate(result.turns, 1)]
    body.append(_ending(result))
    title = escape(f"Agentic Vision · {_shorten(result.question, 80)}")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="color-scheme" content="light dark">\n'
        f"<title>{title}</title>\n<style>{CSS}{evidence.CSS}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(body)
        + "\n</main>\n</body>\n</html>\n"
    )


# -- pieces ------------------------------------------------------------------------


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _tokens(result: AgentResult) -> int:
    u = result.usage
    return u.prompt_tokens + u.output_tokens + u.thoughts_tokens + u.tool_use_prompt_tokens


def _stop_badge(result: AgentResult) -> str:
    cls = STOPS.get(result.stop_reason, "")
    return f'<span class="badge {cls}">{escape(result.stop_reason.replace("_", " ").upper())}</span>'


def _grading(grading: Grading | None) -> str:
    if grading is None:
        return ""
    verdict = '<span class="badge ok">RIGHT</span>' if grading.correct else '<span class="badge bad">WRONG</span>'
    line = (f'<div class="grading">{verdict} expected <b>{escape(grading.expected)}</b> '
            f'<span class="meta">· task {escape(grading.task)} · mode {escape(grading.mode)}</span></div>\n')
    if grading.blind:
        line += f'<div class="note blind"><b>{escape(BLIND_NOTE)}</b></div>\n'
    return line


def _header(result: AgentResult, grading: Grading | None = None) -> str:
    steps = len(result.steps)
    headline = (
        f'<p class="headline">{escape(_shorten(result.answer, 280))}</p>'
        if result.answer
        else f'<p class="headline muted">No answer ({escape(result.stop_reason)})</p>'
    )
    return (
        '<header class="card">\n<h1>Agentic Vision trace</h1>\n'
        f'<div class="meta">{escape(result.model)} · {escape(result.sandbox)} sandbox</div>\n{headline}\n'
        f"{_grading(grading)}"
        f'<div class="summary"><span>{_stop_badge(result)}</span>'
        f"<span><b>{len(result.turns)}</b> turn{'s' * (len(result.turns) != 1)}</span>"
        f"<span><b>{steps}</b> step{'s' * (steps != 1)}</span>"
        f"<span><b>{_tokens(result):,}</b> tokens</span>"
        f"<span><b>{result.timings.wall_s:.1f} s</b> total</span></div>\n</header>"
    )


def _question(result: AgentResult) -> str:
    parts = ['<section class="card">\n<h2>Question</h2>', f'<div class="text question">{escape(result.question)}</div>']
    on_map = evidence.drawn(result)  # shown once, with their regions, under "Where the model looked"
    if result.inputs:
        parts.append('<div class="label">Input images</div>')
        items = [(im, f"{im.label + ' · ' if im.label else ''}{im.width}×{im.height}") for im in result.inputs
                 if im.label not in on_map]
        if items:
            parts.append(_images(items))
        if on_map:
            parts.append('<div class="meta">' + ", ".join(escape(n) for n in sorted(on_map))
                         + ": below, with the regions the code looked at</div>")
    if result.files:
        parts.append('<div class="label">Input files</div><ul class="files">')
        parts += [f'<li><code>{escape(name)}</code></li>' for name in result.files]
        parts.append("</ul>")
    return "\n".join(parts) + "\n</section>"


def _turn(result: AgentResult, turn: Turn, number: int) -> str:
    first = sum(len(t.steps) for t in result.turns[: number - 1]) + 1
    n = len(turn.steps)
    count = f"{n} step{'s' * (n != 1)}" if n else "no code"
    parts = [f'<section class="card turn">\n<h2>Turn {number} <span class="meta">{count}</span></h2>']
    if turn.thoughts:
        parts.append(f'<details class="thoughts"><summary>Thinking <span class="peek">— {escape(_shorten(turn.thoughts, 90))}'
                     f'</span></summary>'
                     f'<div class="text">{escape(turn.thoughts)}</div></details>')
    if turn.text and not turn.steps and turn.text == result.answer and number == len(result.turns):
        parts.append('<p class="meta">Gave the final answer (below).</p>')
    elif turn.text:
        parts.append(f'<div class="text">{escape(turn.text)}</div>')
    elif not turn.steps and not turn.thoughts:
        parts.append('<p class="meta">(no text)</p>')
    parts += [_step(step, first + i) for i, step in enumerate(turn.steps)]
    if turn.note:
        parts.append(f'<div class="note"><b>Loop:</b> {escape(turn.note)}</div>')
    return "\n".join(parts) + "\n</section>"


def _step(step: Step, number: int) -> str:
    word, cls = OUTCOME_LABELS.get(step.outcome, (step.outcome, ""))
    parts = [
        f'<div class="step {cls}" id="step-{number}">\n<h3>Step {number} <span class="badge {cls}">{escape(word)}</span>'
        f'<span class="meta">{step.duration_s:.2f} s</span></h3>\n<div class="body">',
        f'<pre class="code"><code>{_code(step.code)}</code></pre>',
    ]
    if step.output.strip():
        parts.append(f'<div class="label">Output</div>\n<pre class="output">{escape(step.output.rstrip())}</pre>')
    else:
        parts.append('<div class="label">Output</div><div class="meta">(none)</div>')
    if step.images:
        parts.append(f'<div class="label">Images ({len(step.images)})</div>')
        parts.append(_images([(im, f"{number}.{j} · {im.width}×{im.height}") for j, im in enumerate(step.images, 1)]))
    return "\n".join(parts) + "\n</div>\n</div>"


# Images larger than this are embedded as JPEG when that is much smaller: a photo
# crop as PNG is most of a trace's bytes (a 256x256 crop: 130 KB as PNG, 20 KB as JPEG).
COMPACT_ABOVE = 48 * 1024


def _compact(image) -> tuple[bytes, str]:
    """The bytes to embed: the image's own, or a JPEG of it when that is under 60% of their size
    (text and drawings stay PNG: PNG is small for them, and JPEG would blur them)."""
    if len(image.data) <= COMPACT_ABOVE or image.mime_type == "image/jpeg":
        return image.data, image.mime_type
    try:
        with PILImage.open(io.BytesIO(image.data)) as img:
            if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
                return image.data, image.mime_type  # JPEG has no alpha
            out = io.BytesIO()
            img.convert("RGB").save(out, "JPEG", quality=85, optimize=True)
    except Exception:  # checked when the run returned it; if it still does not decode, keep it as it is
        return image.data, image.mime_type
    if out.tell() < 0.6 * len(image.data):
        return out.getvalue(), "image/jpeg"
    return image.data, image.mime_type


def _images(items: list) -> str:
    """Thumbnails; a click opens each at full size (a <details>, no script)."""
    out = []
    for image, caption in items:
        data, mime = _compact(image)
        src = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        out.append(
            f'<details><summary title="Click to enlarge"><img src="{escape(src)}" alt="{escape(caption)}" '
            f'width="{int(image.width)}" height="{int(image.height)}" loading="lazy"></summary></details>'
            f'<div class="cap">{escape(caption)}</div>'
            + (evidence.source_line(image) if isinstance(image, Image) else "")
        )
    return '<div class="images">' + "".join(f"<figure>{o}</figure>" for o in out) + "</div>"


def _ending(result: AgentResult) -> str:
    u, t = result.usage, result.timings
    if result.answer:
        answer = f'<section class="card answer">\n<h2>Answer</h2>\n<div class="text">{escape(result.answer)}</div>'
    else:
        answer = '<section class="card">\n<h2>Answer</h2>\n<p class="muted">The run ended without an answer.</p>'
    facts = [
        ("Stop reason", _stop_badge(result)),
        ("Tokens", f"{u.prompt_tokens:,} prompt · {u.output_tokens:,} output · {u.thoughts_tokens:,} thoughts · "
                   f"{u.tool_use_prompt_tokens:,} tool use"),
        ("Time", f"{t.model_s:.2f} s model · {t.sandbox_s:.2f} s sandbox · {t.wall_s:.2f} s wall"),
        ("Model", f"<code>{escape(result.model)}</code>"),
        ("Sandbox", escape(result.sandbox)),
    ]
    if result.error:
        facts.insert(1, ("Error", f'<span class="badge bad">ERROR</span> <span class="mono">{escape(result.error)}</span>'))
    rows = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    return f'{answer}\n</section>\n<section class="card">\n<h2>Run</h2>\n<dl class="facts">{rows}</dl>\n</section>'


# -- code ----------------------------------------------------------------------------


def _code(code: str) -> str:
    """The code, escaped, one ``<span class="ln">`` per line, highlighted by Pygments
    (its token types mapped onto the page's few colours)."""
    code = code.replace("\r\n", "\n").rstrip("\n")
    lines = [""]
    for text, cls in _segments(code):
        for k, piece in enumerate(text.split("\n")):
            if k:
                lines.append("")
            if piece:
                lines[-1] += f'<span class="{cls}">{escape(piece)}</span>' if cls else escape(piece)
    return "\n".join(f'<span class="ln">{line}</span>' for line in lines)


_CLASSES = ((Token.Comment, "com"), (Token.Literal.String, "str"), (Token.Literal.Number, "num"),
            (Token.Keyword, "kw"), (Token.Name.Builtin, "bi"))


def _segments(code: str) -> list[tuple[str, str]]:
    """``(text, css class)`` pieces covering all of ``code``, neighbours of one class merged."""
    out: list[tuple[str, str]] = []
    for kind, text in PythonLexer(stripnl=False, ensurenl=False).get_tokens(code):
        cls = next((c for parent, c in _CLASSES if kind in parent), "")
        if out and out[-1][1] == cls:
            out[-1] = (out[-1][0] + text, cls)
        else:
            out.append((text, cls))
    return out
