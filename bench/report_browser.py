"""The HTML report in a real browser: headless Chromium renders it, runs its script, seeks.

Builds a realistic timeline (40 segments over 10 minutes, the 6 MOSEI labels, a stretch without
a face, a silent stretch, a segment without words, one unpredictable segment, a hostile word in
a transcript) and a 10-minute recording for its player (the committed talking-head fixture
looped, 320x180 at 10 frames/s with its speech), renders the report twice (with the player, and
with the recording unreachable), and checks in Chromium:

- the table has one row per segment and the SVG timeline one clickable span per segment;
- the player loaded, and opening ``report.html#segment=N`` (which clicks row N) seeked it to
  segment N's start (the page writes ``data-seeked-to`` on the video after each seek);
- real mouse clicks (through the DevTools protocol, with tornado's websocket client) on a row
  and on a span of the timeline seek the player to that segment's start;
- the hostile word stayed text (the page holds its one script only);
- without the recording, the page says so and has no player.

It prints each check and where the screenshot is. Needs ``apt-get install chromium``.

    .venv/bin/python bench/report_browser.py [--out DIR] [--screenshot docs/report-screenshot.png]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from html.parser import HTMLParser
from pathlib import Path
from urllib.request import urlopen

import av
import numpy as np
from tornado.websocket import websocket_connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.timeline import LabelScore, SegmentResult, Timeline  # noqa: E402
from pipeline.writers import get_writer  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "talking_head.mp4"
LABELS = ["happy", "sad", "anger", "surprise", "disgust", "fear"]
SENTENCES = [
    "hello my name is alice and i am very happy today this movie was really good",
    "i am so tired and today was terrible",
    "honestly i did not expect the ending at all it caught me off guard",
    "the first half drags a bit but the acting is solid",
    "that scene with the dog made me cry every single time",
    "i would not recommend it to anyone who hates slow films",
]
DURATION, SEGMENTS, SEEK_TO = 600.0, 40, 3


def build_timeline(media_path: str | None, seed: int = 0) -> Timeline:
    """40 segments of 6-14 s with pauses between, probabilities that drift like real ones."""
    rng = np.random.default_rng(seed)
    lengths, pauses = rng.uniform(6, 14, SEGMENTS), rng.uniform(0.3, 4, SEGMENTS)
    scale = (DURATION - 1) / (lengths + pauses).sum()
    starts = 0.8 + np.concatenate([[0], np.cumsum((lengths + pauses) * scale)[:-1]])
    ends = starts + lengths * scale
    # Mean-reverting logits around a per-label level: a few emotions come and go, most stay low.
    level = np.array([-0.3, -1.2, -2.0, -1.8, -2.4, -2.6])
    logits = np.empty((SEGMENTS, len(LABELS)))
    logits[0] = level
    for i in range(1, SEGMENTS):
        logits[i] = level + 0.75 * (logits[i - 1] - level) + rng.normal(0, 0.9, len(LABELS))
    probabilities = 1 / (1 + np.exp(-logits))
    segments = []
    for i in range(SEGMENTS):
        present = ["text", "visual", "audio"]
        missing: dict[str, str] = {}
        words = SENTENCES[i % len(SENTENCES)].split()
        if 10 <= i <= 13:
            present.remove("visual")
            missing["visual"] = "no face"
        if 20 <= i <= 22:
            present.remove("audio")
            missing["audio"] = "silence"
        if i == 30:
            present.remove("text")
            missing["text"] = "no words"
            words = []
        if i == 7:
            words = ["<script>alert(1)</script>", *words]
        error = None
        labels: list[LabelScore] = []
        if i == 25:
            present, words, error = [], [], "no modality present (no face, silence, no words)"
            missing = {"text": "no words", "visual": "no face", "audio": "silence"}
        else:
            for label, p in zip(LABELS, probabilities[i], strict=True):
                share = rng.dirichlet(np.ones(len(present)))
                contributions = {
                    m: float((p - 0.1) * s) for m, s in zip(present, share, strict=True)
                }
                labels.append(
                    LabelScore(
                        label=label,
                        probability=float(p),
                        predicted=bool(p >= 0.25),
                        contributions=contributions,
                        driven_by=max(contributions, key=contributions.get),
                    )
                )
        segments.append(
            SegmentResult(
                index=i,
                start=float(starts[i]),
                end=float(ends[i]),
                words=words,
                labels=labels,
                present=present,
                missing=missing,
                error=error,
            )
        )
    return Timeline(
        source="interview-2026-11-02.mp4",
        media_path=media_path,
        duration=DURATION,
        label_names=LABELS,
        threshold=0.25,
        segmentation="transcript",
        segments=segments,
    )


def build_recording(path: Path, seconds: float = DURATION, fps: int = 10) -> Path:
    """The talking-head fixture looped to ``seconds``: 320x180 H.264 with its AAC speech."""
    with av.open(str(FIXTURE)) as source:
        frames = [
            f.reformat(width=320, height=180, format="yuv420p").to_ndarray(format="rgb24")
            for f in source.decode(video=0)
        ]
    with av.open(str(FIXTURE)) as source:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
        speech = np.concatenate(
            [
                r.to_ndarray().reshape(-1)
                for f in source.decode(audio=0)
                for r in resampler.resample(f)
            ]
        )
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps, options={"preset": "veryfast", "crf": "32"})
        video.width, video.height, video.pix_fmt = 320, 180, "yuv420p"
        audio = out.add_stream("aac", rate=16000, layout="mono")
        for n in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(frames[(n * 3) % len(frames)], format="rgb24")
            frame.pts, frame.time_base = n, Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode())
        samples = np.resize(speech, int(seconds * 16000)).astype(np.int16)
        for n, block in enumerate(np.array_split(samples, len(samples) // 1024)):
            frame = av.AudioFrame.from_ndarray(block[None, :], format="s16", layout="mono")
            frame.sample_rate, frame.pts = 16000, n * 1024
            out.mux(audio.encode(frame))
        out.mux(audio.encode())
    return path


class _Dom(HTMLParser):
    """What the checks need from the DOM Chromium dumped."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self.spans = 0
        self.scripts = 0
        self.video: dict[str, str] | None = None
        self.by_id: dict[str, dict[str, str]] = {}
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if "id" in found:
            self.by_id[found["id"]] = found
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append(found)
        elif tag == "rect" and "seg" in found.get("class", "").split():
            self.spans += 1
        elif tag == "script":
            self.scripts += 1
        elif tag == "video":
            self.video = found

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False


def chromium_command(*args: str, profile: Path) -> list[str]:
    return [
        shutil.which("chromium") or "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--mute-audio",
        "--autoplay-policy=no-user-gesture-required",
        f"--user-data-dir={profile}",
        *args,
    ]


def chromium(*args: str, profile: Path) -> str:
    done = subprocess.run(
        chromium_command(*args, profile=profile), capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise SystemExit(f"chromium failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout


class DevTools:
    """Just enough of the Chrome DevTools protocol to evaluate JS and click with the mouse."""

    def __init__(self, connection) -> None:  # noqa: ANN001
        self.connection, self.last_id = connection, 0

    async def call(self, method: str, **params: object) -> dict:
        self.last_id += 1
        await self.connection.write_message(
            json.dumps({"id": self.last_id, "method": method, "params": params})
        )
        while True:
            message = json.loads(await self.connection.read_message())
            if message.get("id") == self.last_id:
                return message.get("result", {})

    async def evaluate(self, expression: str) -> object:
        reply = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return reply.get("result", {}).get("value")

    async def wait_for(self, expression: str, seconds: float = 10) -> object:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.1)
        return None

    async def click(self, selector: str) -> None:
        """Scroll the element into view and click its centre, as a user would."""
        box = await self.evaluate(
            f"(() => {{ const el = document.querySelector('{selector}');"
            " el.scrollIntoView({block: 'center'}); const r = el.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            await self.call(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box[0],
                y=box[1],
                button="left",
                clickCount=1,
            )


async def mouse_clicks(url: str, profile: Path, targets: list[tuple[str, str]]) -> list:
    """Open the report in Chromium, click each (name, CSS selector) and read where the player
    seeked to (the page's ``data-seeked-to``); None when it did not seek."""
    browser = subprocess.Popen(
        chromium_command(
            "--remote-debugging-port=0", "--window-size=1280,2000", url, profile=profile
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline:
                raise SystemExit("chromium did not open its DevTools port within 60 s")
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        pages = json.load(urlopen(f"http://127.0.0.1:{port}/json/list"))
        page = next(p for p in pages if p["type"] == "page")
        tools = DevTools(await websocket_connect(page["webSocketDebuggerUrl"]))
        await tools.wait_for("document.getElementById('player').readyState >= 1")
        landed = []
        for _name, selector in targets:
            await tools.evaluate(
                "document.getElementById('player').removeAttribute('data-seeked-to')"
            )
            await tools.click(selector)
            seeked = await tools.wait_for(
                "document.getElementById('player').getAttribute('data-seeked-to')", seconds=5
            )
            landed.append(None if seeked is None else float(seeked))
        return landed
    finally:
        browser.terminate()
        browser.wait(timeout=30)


def check(name: str, ok: bool, detail: str) -> bool:
    print(f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for the files (temp)")
    parser.add_argument("--screenshot", type=Path, default=None, help="copy the screenshot here")
    args = parser.parse_args()
    if shutil.which("chromium") is None:
        print("chromium is not installed: apt-get install -y chromium", file=sys.stderr)
        return 2
    out = args.out or Path(tempfile.mkdtemp(prefix="carat-report-"))
    out.mkdir(parents=True, exist_ok=True)
    profile = Path(tempfile.mkdtemp(prefix="carat-chromium-"))

    recording = build_recording(out / "interview.mp4")
    timeline = build_timeline(media_path=recording.name)  # beside the report: a relative path
    plot, report = out / "timeline.png", out / "report.html"
    get_writer("png").write(timeline, plot)
    get_writer("html").write(timeline, report, plot_png=plot.read_bytes())
    unreachable = out / "report-no-video.html"
    get_writer("html").write(build_timeline(media_path=None), unreachable)
    print(
        f"recording {recording} ({recording.stat().st_size / 1e6:.1f} MB), report {report} "
        f"({report.stat().st_size / 1e3:.0f} KB)"
    )

    url = report.resolve().as_uri()
    dumped = chromium(
        "--virtual-time-budget=15000", "--dump-dom", f"{url}#segment={SEEK_TO}", profile=profile
    )
    dom = _Dom()
    dom.feed(dumped)
    wanted = timeline.segments[SEEK_TO].start
    seeked = (dom.video or {}).get("data-seeked-to")
    current = [r.get("data-segment") for r in dom.rows if "current" in r.get("class", "")]
    results = [
        check(
            "rows", len(dom.rows) == SEGMENTS, f"{len(dom.rows)} table rows, {SEGMENTS} segments"
        ),
        check("timeline", dom.spans == SEGMENTS, f"{dom.spans} clickable spans in the SVG"),
        check(
            "player",
            dom.video is not None
            and "hidden" not in dom.video
            and "hidden" in dom.by_id.get("videoerror", {}),
            f"<video src={(dom.video or {}).get('src')!r}> loaded (its error notice stays hidden)",
        ),
        check(
            "seek",
            seeked is not None and abs(float(seeked) - wanted) < 0.15,
            f"#segment={SEEK_TO} clicked row {current}; player at {seeked} s, "
            f"segment starts at {wanted:.3f} s",
        ),
        check("escaping", dom.scripts == 1, f"{dom.scripts} <script> element(s) in the page"),
    ]
    row, span = 5, 12
    targets = [
        (f"row {row}", f'#segments tr[data-segment="{row}"] button'),
        (f"timeline span {span}", f'#timeline rect.seg[data-segment="{span}"]'),
    ]
    clicked_profile = Path(tempfile.mkdtemp(prefix="carat-chromium-"))
    landed = asyncio.run(mouse_clicks(url, clicked_profile, targets))
    shutil.rmtree(clicked_profile, ignore_errors=True)
    for (name, _), at, index in zip(targets, landed, (row, span), strict=True):
        start = timeline.segments[index].start
        ok = at is not None and abs(at - start) < 0.15
        results.append(
            check(f"click {name}", ok, f"player at {at} s, segment starts at {start:.3f} s")
        )
    plain = _Dom()
    plain.feed(
        chromium(
            "--virtual-time-budget=3000",
            "--dump-dom",
            unreachable.resolve().as_uri(),
            profile=profile,
        )
    )
    results.append(
        check(
            "no recording",
            plain.video is None and "nomedia" in plain.by_id,
            "no <video>; the page says the recording is not reachable",
        )
    )

    shot = out / "report.png"
    chromium(
        "--window-size=1280,2000",
        "--virtual-time-budget=15000",
        f"--screenshot={shot}",
        f"{url}#segment={SEEK_TO}",
        profile=profile,
    )
    if args.screenshot is not None:
        from PIL import Image

        # A palette PNG: the page is flat colour, so 256 colours look the same at a third the size.
        Image.open(shot).convert("RGB").quantize(colors=256).save(args.screenshot, optimize=True)
        size = args.screenshot.stat().st_size / 1e3
        print(f"screenshot copied to {args.screenshot} ({size:.0f} KB)")
    print(f"screenshot {shot} ({shot.stat().st_size / 1e3:.0f} KB)")
    shutil.rmtree(profile, ignore_errors=True)
    print("all checks passed" if all(results) else "SOME CHECKS FAILED")
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
