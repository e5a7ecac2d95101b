"""``memscope plot``: a real PNG from a real recording, and the figure it draws."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import memscope
from memscope.cli.plot import NO_DEEP_NOTE, build_figure

from .conftest import Run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels, from PIL when installed, else from the IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    try:
        from PIL import Image
    except ImportError:
        assert data[12:16] == b"IHDR"
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    with Image.open(path) as image:
        image.verify()  # a complete, uncorrupted file
        return image.size


def test_plot_writes_a_png(run: Run, recording: Path, tmp_path: Path) -> None:
    out_png = tmp_path / "out.png"
    out = run("plot", str(recording), "-o", str(out_png), "--top", "5")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"wrote {out_png}"
    assert png_size(out_png) == (1000, 840)  # 10 x 8.4 inches at 100 dpi: two panels


def test_the_figure_has_rss_and_the_top_types(recording: Path) -> None:
    fig = build_figure(memscope.load(recording), top=5, by="type")
    rss, heap = fig.axes
    assert [line.get_label() for line in rss.get_lines()] == ["RSS", "children RSS"]
    assert len(rss.get_lines()[0].get_xdata()) == 6  # every snapshot
    assert rss.get_ylabel() == "MiB" and heap.get_ylabel() == "MiB"
    names = [line.get_label() for line in heap.get_lines()]
    assert len(names) == 5 and names[0] == "bytes"  # the planted 1000-byte payloads
    grown = heap.get_lines()[0].get_ydata()
    assert len(grown) == 3  # the deep snapshots only
    assert grown[-1] - grown[0] >= 19  # MiB: 20000 more payloads between #2 and #6
    legend = heap.get_legend()
    assert legend is not None and fig.get_suptitle().startswith("memscope: pid")
    assert [t.get_text() for t in legend.get_texts()] == names


def test_a_type_of_module_main_keeps_its_legend_entry(tmp_path: Path) -> None:
    # matplotlib drops labels starting with "_" from automatic legends
    path = tmp_path / "main.jsonl"
    code = (
        "import memscope\n"
        "class Session:\n"
        "    __slots__ = ('pad',)\n"
        "keep = []\n"
        "for k in range(2):\n"
        "    keep.extend(Session() for _ in range(200000))\n"
        f"    memscope.save(memscope.snapshot(deep=True), {str(path)!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=180)
    fig = build_figure(memscope.load(path), top=3)
    legend = fig.axes[1].get_legend()
    assert legend is not None
    assert "__main__.Session" in [t.get_text() for t in legend.get_texts()]


def test_by_module(recording: Path) -> None:
    fig = build_figure(memscope.load(recording), top=3, by="module")
    names = [line.get_label() for line in fig.axes[1].get_lines()]
    assert names[0] == "builtins" and len(names) == 3
    assert "modules by size" in fig.axes[1].get_title()


def test_without_deep_snapshots_a_note_says_how_to_record_them(
    run: Run, recording: Path, tmp_path: Path
) -> None:
    cheap = tmp_path / "cheap.jsonl"
    memscope.save([s for s in memscope.load(recording) if "census" not in s], cheap)
    fig = build_figure(memscope.load(cheap))
    assert len(fig.axes) == 1 and fig.get_supxlabel() == NO_DEEP_NOTE
    assert "memscope.Monitor(deep_every=N, record=path)" in NO_DEEP_NOTE
    out_png = tmp_path / "cheap.png"
    out = run("plot", str(cheap), "-o", str(out_png))
    assert out.returncode == 0, out.stderr
    assert png_size(out_png) == (1000, 480)


def test_bad_input_exits_1(run: Run, recording: Path, tmp_path: Path) -> None:
    out = run("plot", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "x.png"))
    assert out.returncode == 1 and "in.jsonl: cannot read" in out.stderr
    out = run("plot", str(recording), "-o", str(tmp_path / "x.png"), "--by", "size")
    assert out.returncode == 1 and "--by" in out.stderr and "'type', 'module'" in out.stderr
    out = run("plot", str(recording))
    assert out.returncode == 1 and "-o" in out.stderr
    out = run("plot", str(recording), "-o", str(tmp_path / "no" / "such" / "dir.png"))
    assert out.returncode == 1 and out.stderr.startswith("memscope plot: error: -o: cannot write")


def test_without_matplotlib_it_says_how_to_install_it(recording: Path, tmp_path: Path) -> None:
    # a None entry in sys.modules makes `import matplotlib` raise ImportError
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from memscope.cli import main\n"
        f"sys.exit(main(['plot', {str(recording)!r}, '-o', {str(tmp_path / 'x.png')!r}]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        "memscope plot: error: plot needs matplotlib, which is not installed: "
        "pip install 'memscope[plot]'"
    )
    assert not (tmp_path / "x.png").exists()
