"""Decoding any audio file with ffmpeg, block by block, without holding it in memory.

ffmpeg reads everything a user may have: WAV, FLAC, OGG, MP3, AAC/M4A and
MUSDB's `.stem.mp4` (its first audio stream is the mixture). `probe` asks
ffprobe for the first audio stream's rate, channels and (when the container
knows it) duration; `decode_blocks` pipes that stream as float32 and checks
the result: ffmpeg's decoding errors and a stream that ends well short of the
announced duration both mean a damaged or truncated file, and raise.

Every file name reaches ffmpeg and ffprobe as `file:` + its absolute path
(`tool_url`), so that no name can be taken for an option (`-i.wav`,
`--help.flac`), for standard input (`-`) or for another protocol
(`concat:a|b.wav`); the decoded samples go to `pipe:1`.
"""

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

BLOCK_SAMPLES = 1 << 18  # about 6 s at 44.1 kHz
# A decoded stream shorter than the announced duration by more than this
# (seconds, or share of the duration) is truncated. MP3 and AAC announce up to
# a few codec frames (< 0.1 s) more than they decode.
SHORTFALL_SECONDS = 0.25
SHORTFALL_SHARE = 0.01


class AudioFileError(ValueError):
    """A file that cannot be decoded; the message names it."""


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """The first audio stream of a file."""

    path: Path
    sample_rate: int
    channels: int
    duration: float = None  # seconds, as announced by the container; None if unknown


def _require(tool):
    if shutil.which(tool) is None:
        raise AudioFileError(f"{tool} is not on PATH; install ffmpeg (e.g. 'sudo apt-get install ffmpeg').")


def _first_line(text):
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def tool_url(path):
    """How a file name is handed to ffmpeg/ffprobe: `file:` + its absolute path.

    An absolute path never begins with `-` (no option), and the `file:`
    protocol takes the rest literally (no `-` for standard input, no
    `name:` read as a protocol).
    """
    return "file:" + os.path.abspath(os.fspath(path))


def _check_file(path):
    path = Path(path)
    if path.is_dir():
        raise AudioFileError(f"'{path}' is a directory, not an audio file.")
    if not path.exists():
        raise AudioFileError(f"'{path}' does not exist.")
    if path.stat().st_size == 0:
        raise AudioFileError(f"'{path}' is empty (0 bytes).")
    return path


def probe(path):
    """The rate, channels and announced duration of `path`'s first audio stream.

    Raises:
        AudioFileError: no such file, a directory, an empty file, or nothing
            ffprobe can read as audio.
    """
    path = _check_file(path)
    _require("ffprobe")
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
         "stream=sample_rate,channels,duration:format=duration", "-of", "json", tool_url(path)],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise AudioFileError(f"cannot read '{path}' as audio: {_first_line(result.stderr)}")
    found = json.loads(result.stdout or "{}")
    streams = found.get("streams") or []
    if not streams or not streams[0].get("sample_rate") or not streams[0].get("channels"):
        raise AudioFileError(f"'{path}' has no audio stream.")
    stream = streams[0]
    duration = stream.get("duration") or (found.get("format") or {}).get("duration")
    return AudioInfo(path, int(stream["sample_rate"]), int(stream["channels"]),
                     float(duration) if duration not in (None, "N/A") else None)


def decode_blocks(info, block_samples=BLOCK_SAMPLES):
    """Yields the first audio stream of `info.path` as float32 `(samples, channels)` blocks.

    Raises (after the last good block):
        AudioFileError: ffmpeg reported a decoding error, the stream held no
            samples, or it ended short of the announced duration (truncated).
    """
    _require("ffmpeg")
    frame_bytes = 4 * info.channels
    process = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", tool_url(info.path), "-map", "0:a:0", "-vn",
         "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    total = 0
    pending = b""
    finished = False
    try:
        while True:
            data = process.stdout.read(block_samples * frame_bytes)
            if not data:
                finished = True
                break
            data = pending + data
            usable = len(data) - len(data) % frame_bytes
            pending = data[usable:]
            if usable:
                block = np.frombuffer(data[:usable], np.float32).reshape(-1, info.channels)
                total += len(block)
                yield block
    finally:
        if not finished:  # the consumer stopped early, or failed
            process.kill()
        process.stdout.close()
        errors = process.stderr.read().decode(errors="replace")
        process.wait()
    if process.returncode != 0 or errors.strip():
        raise AudioFileError(f"'{info.path}' is damaged or truncated: {_first_line(errors)}")
    if total == 0:
        raise AudioFileError(f"'{info.path}' holds no audio samples.")
    if info.duration:
        missing = info.duration - total / info.sample_rate
        if missing > max(SHORTFALL_SECONDS, SHORTFALL_SHARE * info.duration):
            raise AudioFileError(
                f"'{info.path}' is truncated: it decodes to {total / info.sample_rate:.2f} s of the "
                f"{info.duration:.2f} s its header announces."
            )


def read_audio(path):
    """The whole first audio stream of `path`: `(float32 (samples, channels), rate)`."""
    info = probe(path)
    blocks = list(decode_blocks(info))
    return np.concatenate(blocks), info.sample_rate
