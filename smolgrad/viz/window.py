"""The live view's window: a glfw window through rendercanvas (wgpu-py's canvas layer),
presented with the tensors' own wgpu device."""

from __future__ import annotations

import os
import sys
import warnings
from typing import Callable

import numpy as np
import wgpu

from .render import copy_texture_to_array


class LiveViewUnavailable(RuntimeError):
    """No window can be opened here; the message says why."""


def unavailable_reason() -> str | None:
    """Why a glfw window cannot be opened here, or None when it can."""
    try:
        import glfw
        import rendercanvas.glfw  # noqa: F401
    except ImportError as e:
        return f"{e.name or e} is not installed (pip install 'smolgrad[viz]' installs glfw and rendercanvas)"
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display: neither DISPLAY nor WAYLAND_DISPLAY is set (run in a desktop session, under xvfb-run, or use --snapshot PATH)"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ok = glfw.init()
    if not ok:
        detail = "; ".join(str(w.message) for w in caught) or "glfw.init() failed"
        return f"glfw cannot open a window: {detail}"
    return None


class Window:
    """A resizable glfw window that shows frames drawn with `device` (the tensors' device)."""

    def __init__(self, device, size: tuple[int, int], title: str):
        reason = unavailable_reason()
        if reason:
            raise LiveViewUnavailable(reason)
        import glfw
        from rendercanvas.glfw import GlfwRenderCanvas

        self._glfw = glfw
        self.device = device
        self.canvas = GlfwRenderCanvas(size=size, title=title, update_mode="manual", vsync=False)
        self.context = self.canvas.get_wgpu_context()
        # a plain (not -srgb) format: the shaders' colours are shown as the PNG snapshot stores them
        self.format = self.context.get_preferred_format(device.adapter).removesuffix("-srgb")
        self.context.configure(
            device=device, format=self.format, usage=wgpu.TextureUsage.RENDER_ATTACHMENT | wgpu.TextureUsage.COPY_SRC
        )
        self._handle = self.canvas._window  # the glfw window, to ask it whether the user closed it

    @property
    def closed(self) -> bool:
        """Whether the window is closed; a close the user asked for (the close button) counts
        at once, without waiting for the next poll."""
        if not self.canvas.get_closed() and self._handle is not None and self._glfw.window_should_close(self._handle):
            self.close()
        return self.canvas.get_closed()

    def size(self) -> tuple[int, int]:
        """The drawable size in physical pixels."""
        return tuple(self.canvas.get_physical_size())

    def poll(self) -> bool:
        """Handle pending window events; close the window when the user asked to. True while open."""
        if self.closed:
            return False
        self._glfw.poll_events()
        if self._handle is not None and self._glfw.window_should_close(self._handle):
            self.close()
        return not self.closed

    def present(self, encode: Callable, read_back: bool = False) -> np.ndarray | None:
        """Draw one frame: encode(encoder, texture_view, width, height) records it; with
        `read_back`, also return the frame's RGBA pixels as shown."""
        shown: dict = {}

        def draw() -> None:
            try:
                texture = self.context.get_current_texture()
                width, height = texture.size[0], texture.size[1]
                encoder = self.device.create_command_encoder()
                encode(encoder, texture.create_view(), width, height)
                if read_back:
                    pixels = copy_texture_to_array(self.device, encoder, texture, width, height)
                    shown["rgba"] = pixels[..., [2, 1, 0, 3]] if self.format.startswith("bgra") else pixels
                else:
                    self.device.queue.submit([encoder.finish()])
            except Exception as e:  # rendercanvas would only log it: hand it to the caller
                shown["error"] = e

        self.canvas.request_draw(draw)
        self.canvas.force_draw()
        if "error" in shown:
            raise shown["error"]
        return shown.get("rgba")

    def wait_events(self, timeout: float) -> None:
        self._glfw.wait_events_timeout(timeout)

    def close(self) -> None:
        if not self.canvas.get_closed():
            self.canvas.close()
