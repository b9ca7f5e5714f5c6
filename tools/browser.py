"""Drive the web app in a real browser: Debian's Chromium, headless, through Playwright, with a fake
camera that plays a generated video of digits on paper. Used by tests/deploy/test_web.py and by
`edgedigits benchmark web`."""

from __future__ import annotations

import contextlib
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    """Frames (BGR) as a YUV4MPEG2 file, what Chromium's fake camera plays (in a loop)."""
    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            f.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


@contextlib.contextmanager
def serve(folder: Path):
    """The app on http://127.0.0.1:<free port>/ (a secure context, so the camera and the service worker work)."""
    from edgedigits.deploy.webapp import make_server

    server = make_server(folder, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def browser(fake_video: Path | None = None, camera: bool = True):
    """A headless Chromium context whose camera plays `fake_video` (a .y4m; without one, Chromium's test
    pattern), with camera permission granted; camera=False: no camera, no permission."""
    from playwright.sync_api import sync_playwright

    exe = chromium()
    if not exe:
        raise RuntimeError("Chromium not found: apt-get install chromium")
    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
    if camera:
        args += ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    if camera and fake_video:
        args.append(f"--use-file-for-fake-video-capture={fake_video}")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True, args=args)
        try:
            context = b.new_context(permissions=["camera"] if camera else [])
            yield context
        finally:
            b.close()


def wait_for_frames(page, n: int, timeout_s: float = 60) -> int:
    """Poll from Python: the app's CSP forbids the string evaluation Playwright's waiters use."""
    import time

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        frames = page.evaluate("() => (window.edgedigits && window.edgedigits.frames) || 0")
        if frames >= n:
            return frames
        time.sleep(0.1)
    raise TimeoutError(f"the app processed fewer than {n} camera frames in {timeout_s} s: "
                       f"{page.inner_text('body')[:300]!r}")


def page_recognize(page, png_url: str) -> dict:
    """Run the app's pipeline on an image served beside it, at its own size."""
    return page.evaluate("""async (url) => {
        await window.edgedigits.ready;
        const bitmap = await createImageBitmap(await (await fetch(url)).blob());
        const c = new OffscreenCanvas(bitmap.width, bitmap.height);
        const ctx = c.getContext('2d', {willReadFrequently: true});
        ctx.drawImage(bitmap, 0, 0);
        const d = ctx.getImageData(0, 0, bitmap.width, bitmap.height);
        return await window.edgedigits.recognize(d.data, d.width, d.height);
    }""", png_url)


def page_inference_ms(page, digits: int, runs: int = 100) -> float:
    """Median milliseconds of one model call on `digits` digits, timed inside the page."""
    return page.evaluate("""async ([n, runs]) => {
        await window.edgedigits.ready;
        const m = window.edgedigits.model, x = new Uint8Array(n * 784).map((_, i) => (i * 37) % 256);
        for (let i = 0; i < 10; i++) await m.run(x, n);
        const t = [];
        for (let i = 0; i < runs; i++) { const s = performance.now(); await m.run(x, n); t.push(performance.now() - s); }
        t.sort((a, b) => a - b);
        return t[t.length >> 1];
    }""", [digits, runs])
