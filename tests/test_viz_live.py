"""smolgrad.viz.LiveView: the offscreen render has each panel where the layout puts it and
draws what its data says (curves in their frame, heatmap colours from the tensor's values,
histogram bars from the counts, image grids with their labels); a webgpu tensor panel
reads the live buffer with no readback; a real glfw window under Xvfb shows the same frame."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import textwrap
import time
import zlib

import numpy as np
import pytest
from conftest import require_webgpu

import smolgrad as sg
from smolgrad.viz import LiveView, font
from smolgrad.viz.layout import curve_box, panel_rects, plot_area
from smolgrad.viz.png import encode_png

SIZE = (240, 160)  # small frames: lavapipe shades every pixel on the CPU


@pytest.fixture(autouse=True)
def _drawing_device():
    require_webgpu()  # the view draws with WebGPU whatever device the tensors are on


def read_png(data: bytes) -> np.ndarray:
    """Decode the 8-bit RGBA, filter-0 PNGs that smolgrad.viz writes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + length
    width, height, depth, color, *_ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, color) == (8, 6)
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, 1 + width * 4)
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:].reshape(height, width, 4)


def area_of(view: LiveView, index: int = 0, size=SIZE):
    return plot_area(panel_rects(len(view.panels), *size)[index])


def pixel(img: np.ndarray, x: float, y: float) -> np.ndarray:
    return img[int(y), int(x), :3].astype(np.int64)


def to_u8(rgb) -> np.ndarray:
    return np.round(np.clip(np.asarray(rgb, np.float64), 0, 1) * 255).astype(np.int64)


# NumPy references of the colour maps in smolgrad/viz/shaders.py
STOPS = np.array([[0.05, 0.03, 0.20], [0.36, 0.07, 0.50], [0.75, 0.20, 0.35], [0.98, 0.55, 0.10], [0.99, 0.97, 0.60]])


def sequential_ref(t: float) -> np.ndarray:
    s = min(max(t, 0.0), 1.0) * 4
    i = min(int(s), 3)
    return to_u8(STOPS[i] + (STOPS[i + 1] - STOPS[i]) * (s - i))


def diverging_ref(t: float) -> np.ndarray:
    white = np.array([0.95, 0.95, 0.95])
    end = np.array([0.85, 0.18, 0.13]) if t >= 0 else np.array([0.13, 0.35, 0.85])
    return to_u8(white + (end - white) * min(abs(t), 1.0))


# --------------------------------------------------------------------------- small pieces
def test_png_round_trip_and_snapshot_file(tmp_path):
    rgba = np.random.default_rng(0).integers(0, 256, (5, 7, 4), dtype=np.uint8)
    np.testing.assert_array_equal(read_png(encode_png(rgba)), rgba)
    view = LiveView(live=False, size=SIZE)
    view.update(step=0, loss=1.0)
    path = view.snapshot(tmp_path / "sub" / "view.png")
    np.testing.assert_array_equal(read_png(path.read_bytes()), view.render())
    with pytest.raises(ValueError, match="encode_png needs an"):
        encode_png(np.zeros((4, 4, 3), np.uint8))


def test_font_has_a_distinct_glyph_for_every_printable_character():
    assert font.BITS.shape == (95, 7, 5)
    glyphs = {font.BITS[i].tobytes() for i in range(1, 95)}
    assert len(glyphs) == 94  # no two printable characters (space aside) look the same
    assert not font.BITS[0].any()  # space
    assert (font.glyph_index("\u00e9\n") == ord("?") - 32).all()
    x, y = font.text_pixels("1")
    assert x.max() < font.WIDTH and y.max() < font.HEIGHT


def test_panels_tile_the_window_without_overlapping():
    for n in range(1, 9):
        rects = panel_rects(n, 960, 640)
        assert len(rects) == n
        for i, a in enumerate(rects):
            assert a.x >= 0 and a.y >= 0 and a.x + a.w <= 960 and a.y + a.h <= 640
            for b in rects[i + 1 :]:
                assert a.x + a.w <= b.x or b.x + b.w <= a.x or a.y + a.h <= b.y or b.y + b.h <= a.y


# --------------------------------------------------------------------------- curves and text
def test_curve_pixels_lie_inside_the_plot_frame_and_follow_the_values():
    view = LiveView(live=False, size=SIZE, log_loss=True)
    for step in range(41):
        view.update(step=step, loss=10.0 ** (-step / 20))  # a straight line on the log scale
    img = view.render()
    blue = to_u8((0.35, 0.65, 0.95))
    ys, xs = np.nonzero((np.abs(img[..., :3].astype(np.int64) - blue) <= 2).all(-1))
    box = curve_box(area_of(view))
    assert len(xs) > 50
    assert xs.min() >= box.x and xs.max() < box.x + box.w and ys.min() >= box.y and ys.max() < box.y + box.h
    # away from the legend (top right), the line falls linearly from the top-left to the bottom-right
    columns = np.arange(int(box.x) + 3, int(box.x + box.w * 0.6))
    heights = np.array([ys[(xs == c)].mean() for c in columns if (xs == c).any()])
    assert len(heights) > 0.8 * len(columns)
    assert (np.diff(heights) >= -0.01).all()  # y grows (the curve falls) left to right
    slope = np.polyfit(np.arange(len(heights)), heights, 1)[0]
    assert np.abs(heights - np.polyval(np.polyfit(np.arange(len(heights)), heights, 1), np.arange(len(heights)))).max() < 1.5
    assert slope > 0.3


def test_val_loss_shares_the_loss_panel_and_other_scalars_get_their_own():
    view = LiveView(live=False, size=(480, 300))
    view.update(loss=2.0, val_loss=2.5, lr=0.1, tokens_per_s=1000.0)
    view.update(loss=1.0, val_loss=1.5, lr=0.05, tokens_per_s=1100.0)
    assert list(view.panels) == ["loss", "lr", "tokens_per_s"]
    assert set(view.panels["loss"].series) == {"loss", "val_loss"}
    img = view.render()
    orange = to_u8((0.98, 0.60, 0.20))  # the second series: only in the loss panel
    ys, xs = np.nonzero((np.abs(img[..., :3].astype(np.int64) - orange) <= 2).all(-1))
    box = curve_box(area_of(view, 0, size=(480, 300)))
    assert len(xs) > 20
    assert xs.min() >= box.x and xs.max() < box.x + box.w and ys.min() >= box.y and ys.max() < box.y + box.h


def test_text_panel_wraps_the_sample_inside_its_area():
    view = LiveView(live=False, size=(300, 200))
    view.text("sample", "the quick brown fox jumps over the lazy dog " * 6)
    img = view.render()
    area = area_of(view, size=(300, 200))
    white = to_u8((0.92, 0.93, 0.95))
    ys, xs = np.nonzero((np.abs(img[..., :3].astype(np.int64) - white) <= 2).all(-1))
    below_title = ys >= area.y
    assert below_title.sum() > 100
    assert xs[below_title].max() < area.x + area.w
    assert len(np.unique((ys[below_title] - area.y) // font.LINE)) >= 3  # wrapped onto several lines


# --------------------------------------------------------------------------- tensor panels
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "sliced"])
def test_heatmap_colours_follow_the_tensor_values(device, layout):
    rows, cols = 3, 5
    ramp = np.add.outer(np.arange(rows) * 0.5, np.arange(cols, dtype=np.float64)).astype(np.float32)
    if layout == "contiguous":
        t = sg.tensor(ramp, device=device)
    elif layout == "transposed":
        t = sg.tensor(np.ascontiguousarray(ramp.T), device=device).T
    else:
        padded = np.zeros((rows + 2, cols + 3), np.float32)
        padded[1 : rows + 1, 2 : cols + 2] = ramp
        t = sg.tensor(padded, device=device)[1 : rows + 1, 2 : cols + 2]
    view = LiveView(live=False, size=SIZE)
    view.heatmap("ramp", t)
    img = view.render()
    area = area_of(view)
    lo, hi = ramp.min(), ramp.max()
    for r in range(rows):
        for c in range(cols):
            got = pixel(img, area.x + (c + 0.5) * area.w / cols, area.y + (r + 0.5) * area.h / rows)
            expected = sequential_ref((ramp[r, c] - lo) / (hi - lo))
            assert np.abs(got - expected).max() <= 2, (r, c, got, expected)
    assert view.panels["ramp"].header() == "ramp (3, 5)"


def test_heatmap_of_a_signed_tensor_is_blue_below_zero_and_red_above(device):
    values = np.array([[-2.0, -1.0, 0.0, 1.0, 4.0]], np.float32)
    view = LiveView(live=False, size=SIZE)
    view.heatmap("signed", sg.tensor(values[0], device=device))  # 1-D: one row
    img = view.render()
    area = area_of(view)
    for c, v in enumerate(values[0]):
        got = pixel(img, area.x + (c + 0.5) * area.w / 5, area.y + area.h / 2)
        assert np.abs(got - diverging_ref(v / 4.0)).max() <= 2, (v, got)


def test_histogram_bars_have_the_heights_of_the_counts(device):
    values = np.array([0.0] * 4 + [1.0] * 2 + [2.0] + [3.0] * 8, np.float32)  # 4 bins: 4, 2, 1, 8
    view = LiveView(live=False, size=SIZE)
    view.histogram("h", sg.tensor(values.reshape(3, 5), device=device), bins=4)
    img = view.render()
    area = area_of(view)
    bar = to_u8((0.35, 0.65, 0.95))
    counts = np.histogram(values, bins=4, range=(0, 3))[0]
    np.testing.assert_array_equal(counts, [4, 2, 1, 8])
    for b, count in enumerate(counts):
        x = int(area.x + (b + 0.5) * area.w / 4)
        column = (np.abs(img[int(area.y) : int(area.y + area.h), x, :3].astype(np.int64) - bar) <= 2).all(-1)
        assert abs(column.sum() - count / counts.max() * area.h) <= 2, (b, column.sum())
    assert view.panels["h"].header() == "h (15 values)"


def test_image_grid_shows_each_image_and_colours_labels_by_correctness(device):
    n = 6
    images = np.repeat(np.linspace(0, 1, n, dtype=np.float32)[:, None], 8 * 8, axis=1)  # flattened, constant grey
    labels = sg.tensor(np.array([0, 1, 2, 3, 4, 5]), device=device)
    targets = np.array([0, 1, 9, 3, 9, 5])
    view = LiveView(live=False, size=(300, 200))
    view.images("digits", sg.tensor(images, device=device), labels=labels, targets=targets, image_shape=(8, 8))
    img = view.render((300, 200))
    area = area_of(view, size=(300, 200))
    columns = round(np.sqrt(n * area.w / area.h))
    rows = -(-n // columns)
    cw, ch = area.w / columns, area.h / rows
    green, red = to_u8((0.30, 0.85, 0.35)), to_u8((0.95, 0.30, 0.25))
    for i in range(n):
        x0, y0 = area.x + (i % columns) * cw, area.y + (i // columns) * ch
        grey = pixel(img, x0 + cw / 2, y0 + 3)  # just inside the top of the image square
        assert np.abs(grey - round(i / (n - 1) * 255)).max() <= 1, (i, grey)
        cell = img[int(y0) : int(y0 + ch), int(x0) : int(x0 + cw), :3].astype(np.int64)
        is_green = (np.abs(cell - green) <= 2).all(-1).sum()
        is_red = (np.abs(cell - red) <= 2).all(-1).sum()
        if labels.numpy()[i] == targets[i]:
            assert is_green > 5 and is_red == 0, i
        else:
            assert is_red > 5 and is_green == 0, i
    assert view.panels["digits"].header() == "digits (6, 64)"


def test_webgpu_panel_reads_the_live_buffer_without_a_readback(webgpu):
    model = sg.nn.Linear(6, 4, device=webgpu)
    opt = sg.optim.SGD(model.parameters(), lr=0.5)
    view = LiveView(live=False, size=SIZE)
    view.heatmap("weight", model.weight)
    view.histogram("grad", lambda: model.weight.grad)
    first = view.render()  # warm-up: compiles the pipelines and the min/max/histogram kernels
    x = sg.randn(8, 6, device=webgpu)
    before = sg.stats("webgpu")
    loss = (model(x) ** 2).sum()
    loss.backward()
    opt.step()
    second = view.render()  # the step's kernels run now, on the device
    third = view.render()
    after = sg.stats("webgpu")
    assert after["readbacks"] == before["readbacks"], "drawing a tensor panel read a buffer back to the host"
    assert after["kernels"] > before["kernels"]  # the step really ran on the device
    area = area_of(view, 0)
    region = (slice(int(area.y), int(area.y + area.h)), slice(int(area.x), int(area.x + area.w)))
    assert (first[region] != second[region]).any(), "the heatmap did not change with the weights"
    np.testing.assert_array_equal(second, third)
    grad_area = area_of(view, 1)  # "no data yet" before the first backward, bars after it
    grad_region = (slice(int(grad_area.y), int(grad_area.y + grad_area.h)), slice(int(grad_area.x), int(grad_area.x + grad_area.w)))
    assert (first[grad_region] != second[grad_region]).any(), "the gradient histogram did not appear"


def test_the_readback_counter_counts_a_download():
    t = sg.ones(3, device="webgpu") * 2
    before = sg.stats("webgpu")["readbacks"]
    t.numpy()
    assert sg.stats("webgpu")["readbacks"] == before + 1


# --------------------------------------------------------------------------- bad input, rate, no display
def test_bad_inputs_say_what_was_wrong():
    view = LiveView(live=False, size=SIZE)
    with pytest.raises(ValueError, match=r"heatmap 'x' draws a non-empty 1-D or 2-D tensor, got shape \(2, 3, 4\)"):
        view.heatmap("x", sg.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="bins must be a positive int"):
        view.histogram("h", sg.zeros(3), bins=0)
    with pytest.raises(ValueError, match="image_shape"):
        view.images("im", sg.zeros(4, 10))
    with pytest.raises(ValueError, match=r"does not split into images of shape \(3, 3\)"):
        view.images("im", sg.zeros(4, 10), image_shape=(3, 3))
    with pytest.raises(TypeError, match="expected a Tensor or a callable"):
        view.heatmap("x", [[1, 2]])
    with pytest.raises(ValueError, match="fps must be positive"):
        LiveView(live=False, fps=0)
    with pytest.raises(ValueError, match=r"budget is a share of the time in \(0, 1\]"):
        LiveView(live=False, budget=0)
    view.heatmap("late", lambda: sg.zeros(2, 2, 2))  # checked when drawn
    with pytest.raises(ValueError, match="heatmap 'late'"):
        view.render()
    assert list(view.panels) == ["late"]  # the failed calls added nothing


def test_constant_and_missing_tensors_draw_without_errors():
    view = LiveView(live=False, size=SIZE)
    view.heatmap("zeros", sg.zeros(4, 4, device="webgpu"))  # a broadcast constant: no buffer yet
    view.histogram("none yet", lambda: None)
    img = view.render()
    area = area_of(view, 0)
    assert np.abs(pixel(img, area.x + area.w / 2, area.y + area.h / 2) - sequential_ref(0.0)).max() <= 2


class CountingWindow:
    """Stands in for the glfw window to count redraws."""

    format = "rgba8unorm"
    closed = False

    def __init__(self):
        self.presents = 0

    def poll(self):
        return not self.closed

    def present(self, encode, read_back=False):
        self.presents += 1

    def close(self):
        self.closed = True


def test_update_redraws_at_most_fps_times_a_second_and_survives_a_closed_window(capsys):
    view = LiveView(live=False, size=SIZE, fps=1000.0)
    view.window = CountingWindow()
    view.fps = 1e-3  # at most one frame in 1000 s
    for step in range(50):
        view.update(step=step, loss=1.0 / (step + 1))
    assert view.window.presents == 1
    view.window.closed = True  # the user closed it
    view.update(step=50, loss=0.1)
    assert view.window is None and "training goes on" in capsys.readouterr().err
    view.update(step=51, loss=0.05)  # training goes on, the curve keeps its data
    assert view.panels["loss"].series["loss"][0][-1] == 51
    view.wait_closed()  # no window: returns at once


class SlowWindow(CountingWindow):
    """A window whose frames take `seconds` to draw."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    longest = 0.0

    def present(self, encode, read_back=False):
        super().present(encode, read_back)
        start = time.perf_counter()
        time.sleep(self.seconds)
        self.longest = max(self.longest, time.perf_counter() - start)


def test_slow_frames_take_at_most_the_budget_share_of_the_time():
    view = LiveView(live=False, size=SIZE, fps=1e6, budget=0.1)
    view.window = SlowWindow(0.02)
    view.update(step=0, loss=1.0)  # the first frame (compiles the render pipelines)
    first_frame = view.draw_seconds
    start = time.perf_counter()
    step = 0
    while time.perf_counter() - start < 0.6 or step < 100:
        step += 1
        view.update(step=step, loss=1.0)
    elapsed = time.perf_counter() - start
    assert step > 10 * view.window.presents  # far fewer frames than the million per second asked for
    # the first frame (compiling) and the last one aside, drawing took at most the budget's share
    assert view.frames >= 2
    assert view.draw_seconds - first_frame <= view.budget * elapsed + view.window.longest


def test_live_without_a_display_says_why_and_keeps_working(monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    view = LiveView(live=True, size=SIZE)
    err = capsys.readouterr().err
    assert view.window is None and not view.is_live
    assert "no live window" in err and ("no display" in err or "not installed" in err) and "training goes on" in err
    view.update(step=1, loss=1.0)
    assert view.render().shape == (SIZE[1], SIZE[0], 4)


# --------------------------------------------------------------------------- a real window
WINDOW_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import glfw
    import smolgrad as sg
    from smolgrad.viz import LiveView

    view = LiveView(title="smolgrad test", size=(320, 200), fps=1e-3)  # update() draws only its first frame
    assert view.is_live, "no window"
    w = sg.randn(5, 7, device="webgpu")
    view.heatmap("w", w)
    shots = []
    for step in range(3):
        view.update(step=step, loss=1.0 / (step + 1))
        shots.append(view.redraw(read_back=True))
    width, height = shots[-1].shape[1], shots[-1].shape[0]
    offscreen = view.render((width, height))
    frames = view.frames
    glfw.set_window_should_close(view.window._handle, True)  # as the close button does
    view.update(step=3, loss=0.2)

    import threading, time
    last = LiveView(title="the end of a run", size=(160, 120))
    last.update(step=1, loss=1.0)
    threading.Timer(0.5, glfw.set_window_should_close, (last.window._handle, True)).start()  # the user, later
    start = time.perf_counter()
    last.wait_closed(timeout=60)  # the last frame stays up until the window is closed
    waited = time.perf_counter() - start

    broken = LiveView(title="a panel that fails", size=(160, 120), fps=1e-3)
    broken.heatmap("3-D", lambda: sg.zeros(2, 2, 2))
    broken.update(step=1, loss=1.0)  # the frame fails: the view stops, training goes on
    broken.update(step=2, loss=0.5)
    print(json.dumps({
        "broken_view_stopped": broken.window is None,
        "waited_for_close": waited,
        "closed_after_wait": not last.is_live,
        "frames": frames,
        "size": [width, height],
        "max_diff_to_offscreen": int(np.abs(shots[-1].astype(int) - offscreen.astype(int)).max()),
        "frames_differ": bool((shots[0] != shots[-1]).any()),
        "closed_after_close_button": view.window is None,
        "steps_after_close": view.panels["loss"].series["loss"][0][-1],
    }))
    """
)


def start_xvfb():
    """Start Xvfb on a free display; return (process, ':N'), or skip saying why."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("no display server: Xvfb is not installed (apt-get install -y xvfb)")
    read, write = os.pipe()
    proc = subprocess.Popen(
        [xvfb, "-displayfd", str(write), "-screen", "0", "640x480x24", "-nolisten", "tcp"],
        pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as f:
        number = f.readline().strip()
    if not number:
        proc.kill()
        pytest.skip("no display server: Xvfb did not start")
    return proc, f":{number}"


def test_a_real_glfw_window_under_xvfb_shows_the_frames():
    pytest.importorskip("glfw", reason="glfw is not installed (pip install 'smolgrad[viz]')")
    pytest.importorskip("rendercanvas", reason="rendercanvas is not installed (pip install 'smolgrad[viz]')")
    proc, display = start_xvfb()
    try:
        env = {**os.environ, "DISPLAY": display}
        env.pop("WAYLAND_DISPLAY", None)
        run = subprocess.run([sys.executable, "-c", WINDOW_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["frames"] == 4  # the first update's frame and three redraws
    assert result["size"][0] > 0 and result["size"][1] > 0
    assert result["max_diff_to_offscreen"] <= 2  # the window shows what the snapshot renders
    assert result["frames_differ"]  # the loss curve grew between the frames
    assert result["closed_after_close_button"]
    assert result["steps_after_close"] == 3.0
    assert 0.4 <= result["waited_for_close"] < 30 and result["closed_after_wait"]
    assert result["broken_view_stopped"] and "live view stopped: ValueError: heatmap '3-D'" in run.stderr
