"""
Draw the story of one interrupted-and-resumed download: bytes on disk over time, per try.

By default it produces the run itself: ``scripts/demo.py`` downloads a file through a fault proxy
that caps the link (so the transfer takes a few seconds) and cuts it once; Airflow's retry resumes.
The task log (progress lines every ``--progress-interval`` seconds, with their timestamps) and the
task's XCom result are then turned into a picture:

- one line per try: bytes of the file on disk against seconds since the first try started;
- the cut (where the first try lost the link) and the durable checkpoint it left behind;
- the resume point (where the retry continued, after verifying the kept bytes);
- for scale, a dashed line for a retry that starts again from byte 0 at the same rate.

::

    .venv/bin/python scripts/plot_resume_story.py                 # run the demo, draw the picture
    .venv/bin/python scripts/plot_resume_story.py --log run.log --result result.json

Needs matplotlib (``pip install -e ".[docs]"``) for drawing; ``--story-json`` writes the parsed
story without drawing.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "docs" / "images" / "resume_story.png"
MiB = 1024 * 1024

# Airflow 3 (structlog): "2026-11-25T08:32:47.596209Z [info     ] message [logger] ..."
# Airflow 2.11:          "[2026-11-25T08:32:47.596+0000] {progress.py:74} INFO - message"
_STAMP = re.compile(r"^\[?(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)(Z|[+-]\d\d:?\d\d)?\]?")
_CONNECTING = re.compile(r"Connecting to \S+")
_STARTING = re.compile(r"Starting download of (\d+) bytes")
_RESUMING = re.compile(r"Resuming at (\d+) of (\d+) bytes .*verified by: (\S+)")
_PROGRESS = re.compile(r"Progress: ([\d.]+)% \(")
_CHECKPOINT = re.compile(r"Checkpoint kept: (\d+) of (\d+) bytes")
_CUT = re.compile(r"(TransferInterrupted|TransferStalled)\b.* at offset (\d+)")
_DONE = re.compile(r"Done: .*\((\d+) bytes, sha256 ([0-9a-f]{64})\)")


@dataclass
class Try:
    """One try as its log tells it; times in seconds since the first try started."""

    number: int
    started: float
    start_bytes: int = 0
    points: list[tuple[float, int]] = field(default_factory=list)
    verified_by: str | None = None
    cut_at: tuple[float, int] | None = None
    durable: int | None = None
    done_at: float | None = None


@dataclass
class Story:
    """What the picture shows."""

    size: int
    tries: list[Try]
    sha256: str
    resumed_from: int
    rate: float  # bytes per second of the last try, for the restart-from-zero comparison


def _timestamp(line: str) -> float | None:
    match = _STAMP.match(line)
    if not match:
        return None
    zone = (match.group(2) or "Z").replace("Z", "+00:00")
    if len(zone) == 5:  # +0000
        zone = zone[:3] + ":" + zone[3:]
    return datetime.fromisoformat(match.group(1) + zone).timestamp()


def parse_story(log: str, result: dict[str, Any]) -> Story:
    """
    Read the tries out of a task log and check them against the task's result.

    :param log: the task log of every try, in order (Airflow 2.11 or 3 format)
    :param result: the XCom result of the successful try
    :raises ValueError: when the log does not tell a resumed download
    """
    size = int(result["size"])
    tries: list[Try] = []
    origin: float | None = None
    for line in log.splitlines():
        stamp = _timestamp(line)
        if _CONNECTING.search(line) and stamp is not None:
            origin = stamp if origin is None else origin
            tries.append(Try(number=len(tries) + 1, started=stamp - origin))
            continue
        if not tries or origin is None:
            continue
        current = tries[-1]
        if match := _CUT.search(line):  # the traceback line has no timestamp of its own
            if current.cut_at is not None:  # the checkpoint line just before it timed the cut
                when = current.cut_at[0]
            else:
                when = current.points[-1][0] if current.points else current.started
            current.cut_at = (when, int(match.group(2)))
        if stamp is None:
            continue
        now = stamp - origin
        if match := _STARTING.search(line):
            current.points.append((now, 0))
        elif match := _RESUMING.search(line):
            current.start_bytes = int(match.group(1))
            current.verified_by = match.group(3)
            current.points.append((now, current.start_bytes))
        elif match := _PROGRESS.search(line):
            current.points.append((now, round(float(match.group(1)) / 100 * size)))
        elif match := _CHECKPOINT.search(line):
            current.durable = int(match.group(1))
            if current.cut_at is None:
                current.cut_at = (now, current.points[-1][1] if current.points else 0)
            current.cut_at = (now, max(current.cut_at[1], current.durable))
        elif match := _DONE.search(line):
            current.done_at = now
            current.points.append((now, int(match.group(1))))
    if len(tries) < 2 or tries[-1].done_at is None:
        raise ValueError("the log does not show an interrupted try followed by a successful one")
    last = tries[-1]
    if last.start_bytes != int(result["resumed_from"]) or last.points[-1][1] != size:
        raise ValueError("the log and the result disagree on the resume point or the size")
    span = last.points[-1][0] - last.points[0][0]
    rate = (size - last.start_bytes) / span if span > 0 else 0.0
    return Story(size, tries, str(result["sha256"]), int(result["resumed_from"]), rate)


def render(story: Story, output: Path) -> None:
    """
    Draw ``story`` into the PNG ``output``.

    :param story: from :func:`parse_story`
    :param output: the picture to write
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=110)
    colours = ["#d95f02", "#1b9e77", "#7570b3", "#e7298a"]
    for index, attempt in enumerate(story.tries):
        colour = colours[index % len(colours)]
        xs = [t for t, _ in attempt.points]
        ys = [b / MiB for _, b in attempt.points]
        if attempt.cut_at:
            xs.append(attempt.cut_at[0])
            ys.append(attempt.cut_at[1] / MiB)
        label = f"try {attempt.number}" + (" (link cut)" if attempt.cut_at else " (resumed, verified)")
        ax.plot(xs, ys, marker="o", markersize=3, linewidth=2, color=colour, label=label)
        if attempt.cut_at:
            when, offset = attempt.cut_at
            ax.scatter([when], [offset / MiB], marker="X", s=140, color="#b2182b", zorder=5)
            ax.annotate(
                f"link cut at {offset / MiB:.1f} MiB",
                (when, offset / MiB),
                xytext=(12, -4),
                textcoords="offset points",
                color="#b2182b",
            )
        if attempt.durable is not None:
            ax.axhline(attempt.durable / MiB, color=colour, linestyle=":", linewidth=1)
            ax.annotate(
                f"checkpoint: {attempt.durable / MiB:.1f} MiB durable",
                (1.0, attempt.durable / MiB),
                xycoords=("axes fraction", "data"),
                xytext=(-4, -12),
                textcoords="offset points",
                ha="right",
                color=colour,
                fontsize="small",
            )
        if attempt.verified_by and attempt.points:
            when, offset = attempt.points[0]
            ax.annotate(
                f"retry resumes at {offset / MiB:.1f} MiB\nkept bytes checked: {attempt.verified_by}",
                (when, offset / MiB),
                xytext=(-14, 34),
                textcoords="offset points",
                ha="right",
                arrowprops={"arrowstyle": "->", "color": colour},
                color=colour,
            )
    last = story.tries[-1]
    if story.rate > 0 and last.points:
        begin = last.points[0][0]
        ax.plot(
            [begin, begin + story.size / story.rate],
            [0, story.size / MiB],
            linestyle="--",
            color="grey",
            linewidth=1,
            label="a retry from byte 0 at the same rate",
        )
    first_cut = next((t.cut_at for t in story.tries if t.cut_at), None)
    if first_cut and last.points:
        ax.axvspan(first_cut[0], last.started, color="#eeeeee", zorder=0)
        ax.text(
            (first_cut[0] + last.started) / 2,
            story.size / MiB * 0.04,
            "between tries:\nretry_delay,\nscheduling",
            ha="center",
            color="grey",
        )
    done_at, done_bytes = last.points[-1]
    ax.annotate(
        f"complete, sha256 {story.sha256[:12]}...",
        (done_at, done_bytes / MiB),
        xytext=(-10, 8),
        textcoords="offset points",
        ha="right",
    )
    ax.axhline(story.size / MiB, color="black", linewidth=0.6)
    ax.set_xlabel("seconds since the first try started")
    ax.set_ylabel("bytes of the file on disk (MiB)")
    ax.set_title(
        f"One download of {story.size / MiB:.0f} MiB, cut once, resumed by Airflow's retry", fontsize="medium"
    )
    ax.set_ylim(0, story.size / MiB * 1.12)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output)
    plt.close(fig)


def run_demo(args: argparse.Namespace, workdir: Path) -> tuple[str, dict[str, Any]]:
    """Run ``scripts/demo.py`` with a capped, once-cut link; return its log and result."""
    workdir.mkdir(parents=True, exist_ok=True)
    result_path = workdir / "resume_story_result.json"
    command = [
        sys.executable,
        str(ROOT / "scripts" / "demo.py"),
        f"--size-mib={args.size_mib}",
        f"--cut-at={args.cut_at}",
        f"--rate-mb={args.rate_mb}",
        f"--progress-interval={args.progress_interval}",
        f"--result-json={result_path}",
        f"--workdir={workdir / 'demo'}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    log = done.stdout + done.stderr
    if done.returncode != 0:
        raise SystemExit(f"the demo run failed:\n{log[-4000:]}")
    return log, json.loads(result_path.read_text())


def main() -> int:
    """Run or read one resumed download and draw it."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--log", type=Path, help="a task log to read instead of running the demo")
    parser.add_argument("--result", type=Path, help="the task's XCom result (JSON), with --log")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the PNG to write")
    parser.add_argument("--story-json", type=Path, help="write the parsed story here and do not draw")
    parser.add_argument("--size-mib", type=int, default=48, help="demo file size (MiB)")
    parser.add_argument("--cut-at", type=float, default=0.45, help="demo cut point (fraction of the file)")
    parser.add_argument("--rate-mb", type=float, default=12.0, help="demo link cap (MB/s)")
    parser.add_argument("--progress-interval", type=float, default=0.2, help="seconds between progress lines")
    parser.add_argument(
        "--workdir", type=Path, default=ROOT / ".demo-story", help="scratch directory of the demo run"
    )
    args = parser.parse_args()

    if args.log:
        if not args.result:
            parser.error("--log needs --result")
        log, result = args.log.read_text(), json.loads(args.result.read_text())
    else:
        log, result = run_demo(args, args.workdir)
        (args.workdir / "resume_story.log").write_text(log)
    story = parse_story(log, result)
    if args.story_json:
        args.story_json.write_text(json.dumps(asdict(story), indent=1))
        print(f"story: {len(story.tries)} tries, resumed from {story.resumed_from} of {story.size} bytes")
        return 0
    render(story, args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
