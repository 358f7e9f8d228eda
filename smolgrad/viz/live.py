"""`LiveView`: watch training in a window drawn by the GPU from the tensors' own buffers,
or render the same view offscreen into a PNG."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from ..tensor import Tensor
from .layout import panel_rects
from .panels import CurvePanel, HeatmapPanel, HistogramPanel, ImageGridPanel, Panel, TensorSource, TextPanel
from .png import write_png
from .render import OFFSCREEN_FORMAT, Renderer, render_to_array
from .shapes import Shapes
from .window import LiveViewUnavailable, Window

DEFAULT_FPS = 2.0  # redraws per second at most
DEFAULT_BUDGET = 0.05  # and at most this share of the training thread's time (slow drawing devices draw less often)
POLL_INTERVAL = 0.05  # seconds between window event polls during training
CURVE_PANEL = {"val_loss": "loss", "train_loss": "loss"}  # series that share another series' panel
CURVE_TITLES = {"loss": "loss", "lr": "learning rate", "tokens_per_s": "tokens/s", "samples_per_s": "samples/s"}


def _drawing_device():
    """The wgpu device the view draws with: the webgpu device the tensors live on (also used,
    as a small drawing device, when training runs on the numpy device)."""
    from ..device import get_backend

    try:
        return get_backend("webgpu").device
    except Exception as e:  # no adapter at all
        raise LiveViewUnavailable(f"the live view draws with WebGPU and none is available: {e}") from e


class LiveView:
    """Panels of training curves and tensors, drawn in a glfw window (`live=True`) at most `fps`
    times a second and with at most a `budget` share of the time (after a frame that took d
    seconds the next waits at least d / budget), and into a PNG on demand (`snapshot`).

    Typical use: `view.update(step=i, loss=loss_value, lr=lr)` every step, and
    `view.heatmap("fc1.weight", model.fc1.weight)` once; tensor panels redraw from the
    tensor's current buffer each frame. Without a window (no glfw, no display), `live`
    says why on stderr and everything else keeps working."""

    def __init__(
        self,
        title: str = "smolgrad",
        size: tuple[int, int] = (960, 640),
        fps: float = DEFAULT_FPS,
        live: bool = True,
        budget: float = DEFAULT_BUDGET,
        log_loss: bool = True,
    ):
        if fps <= 0:
            raise ValueError(f"LiveView: fps must be positive, got {fps}")
        if not 0 < budget <= 1:
            raise ValueError(f"LiveView: budget is a share of the time in (0, 1], got {budget}")
        if len(size) != 2 or min(size) < 16:
            raise ValueError(f"LiveView: size must be (width, height) of at least 16 pixels each, got {size}")
        self.title = title
        self.size = (int(size[0]), int(size[1]))
        self.fps = float(fps)
        self.budget = float(budget)
        self.log_loss = log_loss
        self.panels: dict[str, Panel] = {}
        self.window: Window | None = None
        self.frames = 0  # frames drawn into the window
        self.draw_seconds = 0.0  # time spent drawing them
        self._renderers: dict[str, Renderer] = {}
        self._step = 0
        self._last_draw = -float("inf")
        self._last_draw_seconds = 0.0
        self._last_poll = -float("inf")
        self.device = _drawing_device()
        if live:
            try:
                self.window = Window(self.device, self.size, title)
            except LiveViewUnavailable as e:
                print(f"smolgrad.viz: no live window: {e}; training goes on", file=sys.stderr)

    # ----- what is shown
    def update(self, step: int | None = None, **scalars: float) -> None:
        """Record scalars at `step` (loss, val_loss, lr, tokens_per_s, ...: one curve each,
        val_loss next to loss; a 0-d Tensor is read with .item()) and redraw the window when
        the rate and the budget allow."""
        self._step = self._step + 1 if step is None else step
        for name, value in scalars.items():
            if value is None:
                continue
            if isinstance(value, Tensor):
                value = value.item()
            self.curve(CURVE_PANEL.get(name, name)).add(name, self._step, float(value))
        self._tick()

    def curve(self, name: str, log: bool | None = None) -> CurvePanel:
        """The curve panel `name` (made on first use); `log` sets a log-scale y axis."""
        panel = self.panels.get(name)
        if panel is None:
            default_log = self.log_loss and name == "loss"
            panel = self.panels[name] = CurvePanel(CURVE_TITLES.get(name, name), default_log if log is None else log)
        elif not isinstance(panel, CurvePanel):
            raise ValueError(f"LiveView: panel '{name}' is a {type(panel).__name__}, not a curve")
        if log is not None:
            panel.log = log
        return panel

    def heatmap(self, name: str, tensor: TensorSource) -> None:
        """Show a matrix (weights, gradients, an attention map such as attn[0, head]) as a heatmap;
        `tensor` may be a callable returning the tensor to draw (e.g. lambda: w.grad)."""
        self.panels[name] = HeatmapPanel(name, tensor)

    def histogram(self, name: str, tensor: TensorSource, bins: int = 30) -> None:
        """Show the histogram of a tensor's values."""
        self.panels[name] = HistogramPanel(name, tensor, bins)

    def images(self, name: str, images: TensorSource, labels=None, targets=None, image_shape=None, max_images: int = 64) -> None:
        """Show a grid of grey images with their predicted `labels` (green where they equal
        `targets`, red where not); image_shape=(H, W) unflattens rows such as MNIST's 784."""
        self.panels[name] = ImageGridPanel(name, images, labels, targets, image_shape, max_images)

    def text(self, name: str, text: str) -> None:
        """Show a text (the latest generated sample)."""
        panel = self.panels.get(name)
        if isinstance(panel, TextPanel):
            panel.text = text
        else:
            self.panels[name] = TextPanel(name, text)

    # ----- drawing
    def frame(self, width: int, height: int) -> tuple[np.ndarray, list]:
        """The host triangles and the tensor draws of a frame of width x height pixels."""
        shapes, draws = Shapes(), []
        for rect, panel in zip(panel_rects(len(self.panels), width, height), self.panels.values()):
            panel.draw(rect, shapes, draws)
        return shapes.vertices(), draws

    def _renderer(self, target_format: str) -> Renderer:
        if target_format not in self._renderers:
            self._renderers[target_format] = Renderer(self.device, target_format)
        return self._renderers[target_format]

    def render(self, size: tuple[int, int] | None = None) -> np.ndarray:
        """Draw the view offscreen; return its (height, width, 4) uint8 RGBA pixels."""
        width, height = size or self.size
        vertices, draws = self.frame(width, height)
        return render_to_array(self._renderer(OFFSCREEN_FORMAT), width, height, vertices, draws)

    def snapshot(self, path: str | Path, size: tuple[int, int] | None = None) -> Path:
        """Render the view offscreen into a PNG file at `path`; return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_png(path, self.render(size))
        return path

    def redraw(self, read_back: bool = False) -> np.ndarray | None:
        """Draw the window now (nothing without one); with `read_back`, return what it shows."""
        if self.window is None or not self.window.poll():
            return None
        start = time.perf_counter()
        renderer = self._renderer(self.window.format)

        def encode(encoder, target, width, height):
            vertices, draws = self.frame(width, height)
            renderer.encode(encoder, target, width, height, vertices, draws)

        pixels = self.window.present(encode, read_back)
        self._last_draw = time.perf_counter()
        self._last_draw_seconds = self._last_draw - start
        self.draw_seconds += self._last_draw_seconds
        self.frames += 1
        return pixels

    def _tick(self) -> None:
        """On the training thread: poll the window now and then, redraw within the rate and the budget."""
        if self.window is None:
            return
        now = time.perf_counter()
        # the first frame compiles the pipelines and the panels' kernels: it says nothing of the next ones
        spent = self._last_draw_seconds if self.frames > 1 else 0.0
        if now - self._last_draw >= max(1.0 / self.fps, spent / self.budget):
            self._safely(self.redraw)
        elif now - self._last_poll >= POLL_INTERVAL:
            self._last_poll = now
            self._safely(self.window.poll)
        if self.window is not None and self.window.closed:
            print("smolgrad.viz: live view closed; training goes on", file=sys.stderr)
            self.window = None

    def _safely(self, action) -> None:
        """Run a window action; a failure closes the view with a message and training goes on."""
        try:
            action()
        except Exception as e:  # the view must never stop the training run
            print(f"smolgrad.viz: live view stopped: {type(e).__name__}: {e}; training goes on", file=sys.stderr)
            self.close()

    @property
    def is_live(self) -> bool:
        """Whether a window is open."""
        return self.window is not None and not self.window.closed

    def wait_closed(self, timeout: float | None = None) -> None:
        """Keep the last frame up until the user closes the window (or `timeout` seconds pass);
        returns at once without a window."""
        if not self.is_live:
            return
        self._safely(self.redraw)
        deadline = None if timeout is None else time.perf_counter() + timeout
        while self.is_live and (deadline is None or time.perf_counter() < deadline):
            self.window.wait_events(0.1)
            if self.window.poll() and time.perf_counter() - self._last_draw > 0.5:
                self._safely(self.redraw)  # redraw after a resize or an expose
        self.close()

    def close(self) -> None:
        """Close the window, if any."""
        if self.window is not None:
            self.window.close()
            self.window = None
