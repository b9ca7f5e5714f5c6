"""`edgedigits deploy --target web`: a static, offline web app that runs a manifest's model in the
browser on the phone's camera, and `edgedigits serve` to try it.

The app is the files of deploy/web/ (page, preprocessing in JavaScript that mirrors preprocess.py,
service worker), the model file, and the runtime's JavaScript and WebAssembly copied from npm
packages pinned by deploy/web/package-lock.json. Nothing is loaded from another origin; the page's
Content-Security-Policy forbids it.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import ssl
import subprocess
import sys
from dataclasses import asdict
from functools import partial
from pathlib import Path

from edgedigits.atomic import atomic_folder, folder_lock
from edgedigits.contract import CONFIDENCE, LABELS, PIXEL_SCALE, PREPROCESSING, SegmentConfig
from edgedigits.errors import EdgeDigitsError
from edgedigits.formats import FORMATS, TARGETS
from edgedigits.deploy.runners import VERIFIER, VERIFIER_FILES
from edgedigits.manifest import Manifest, load_manifest

WEB = Path(__file__).with_name("web")
PAGE_FILES = ("index.html", "app.js", "preprocess.js", "group.js", "crops.js", "sw.js", "style.css",
              "app.webmanifest")
# runtime -> (model file name in the app, {node_modules path: app path}). Which formats it runs, and
# which by default, is the format table's word (edgedigits.formats: `web`, `default_for`).
# ONNX Runtime Web runs the int8 QDQ model on WebAssembly (SIMD, one thread: no cross-origin isolation
# needed). LiteRT.js was measured too and left out: it takes no int8 input tensors and no dynamic batch,
# and its two WebAssembly builds (with and without relaxed SIMD) weigh 19 MB against ORT's 14 MB.
RUNTIMES = {
    "onnxruntime-web": ("model.onnx", {
        "onnxruntime-web/dist/ort.wasm.min.mjs": "runtime/ort.wasm.min.mjs",
        "onnxruntime-web/dist/ort-wasm-simd-threaded.mjs": "runtime/ort-wasm-simd-threaded.mjs",
        "onnxruntime-web/dist/ort-wasm-simd-threaded.wasm": "runtime/ort-wasm-simd-threaded.wasm",
    }),
}
DEFAULT_RUNTIME = "onnxruntime-web"  # chosen by measurement: see README, "On the phone"


def _camel(config: dict) -> dict:
    """{"max_side": 320} -> {"maxSide": 320}: Python's names as JavaScript spells them."""
    return {k.split("_")[0] + "".join(w.title() for w in k.split("_")[1:]): v for k, v in config.items()}


def node_modules() -> Path:
    """The pinned npm packages: deploy/web/node_modules in a checkout, else installed once into the
    cache from the shipped lockfile with `npm ci` (needs npm and its registry)."""
    local = WEB / "node_modules"
    if (local / "onnxruntime-web").is_dir():
        return local
    lock = (WEB / "package-lock.json").read_bytes()
    cache = Path(os.environ.get("EDGEDIGITS_DATA") or Path.home() / ".cache" / "edgedigits") / \
        f"web-{hashlib.sha256(lock).hexdigest()[:12]}"
    if not (cache / "node_modules" / "onnxruntime-web").is_dir():
        npm = shutil.which("npm")
        if not npm:
            raise EdgeDigitsError("building the web app needs npm (to install the pinned runtime from "
                                  "deploy/web/package-lock.json): install Node.js and npm")
        cache.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(WEB / name, cache / name)
        proc = subprocess.run([npm, "ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=cache,
                              capture_output=True, text=True)
        if proc.returncode:
            raise EdgeDigitsError(f"npm ci in {cache} failed: {(proc.stderr or proc.stdout).strip()[-300:]}")
    return cache / "node_modules"


def build(manifest, out: Path, runtime: str = DEFAULT_RUNTIME, fmt: str | None = None, say=print,
          verifier: bool = True) -> dict:
    """Write the app into `out` (replaced whole, atomically). Returns sizes for the report."""
    if runtime not in RUNTIMES:
        raise EdgeDigitsError(f"unknown web runtime '{runtime}'; choose one of: {', '.join(RUNTIMES)}")
    m = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    model_name, files = RUNTIMES[runtime]
    fmt = fmt or TARGETS["web"]
    if fmt not in FORMATS or not FORMATS[fmt].web:
        raise EdgeDigitsError(f"the web app cannot run '{fmt}'; choose one of: "
                              f"{', '.join(f.name for f in FORMATS.values() if f.web)}")
    entry = m.artifact(fmt)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # a second build into this folder is refused while this one runs; the old app stays whole until the
    # new one takes its place
    with folder_lock(out), atomic_folder(out) as tmp:
        modules = node_modules()
        for name in PAGE_FILES:
            shutil.copy2(WEB / name, tmp / name)
        for src, dst in files.items():
            (tmp / dst).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(modules / src, tmp / dst)
        shutil.copy2(m.file(entry), tmp / model_name)
        meta = {"runtime": runtime, "format": fmt, "model": model_name, "labels": m.data["labels"],
                "input": entry["inputs"][0], "output": entry["outputs"][0], "confidence": CONFIDENCE,
                "pixel_scale": PIXEL_SCALE,
                "preprocessing": PREPROCESSING, "source": m.data["source"]["model"],
                "segment": _camel(asdict(SegmentConfig()))}  # preprocess.js takes the Python pipeline's settings
        if verifier and [str(v) for v in m.data["labels"]] == LABELS:  # the verifier decides what is a digit
            shutil.copy2(VERIFIER / VERIFIER_FILES["onnxruntime"], tmp / "verifier.onnx")
            meta["verifier"] = {"model": "verifier.onnx", "input": "digits", "output": "probabilities",
                                "classes": ["not a digit", "digit"]}
        (tmp / "model.json").write_text(json.dumps(meta, indent=1))
        listed = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
        digest = hashlib.sha256()
        for rel in listed:
            digest.update(rel.encode() + (tmp / rel).read_bytes())
        (tmp / "precache.json").write_text(json.dumps(listed))
        sw = tmp / "sw.js"
        sw.write_text(sw.read_text().replace("__VERSION__", digest.hexdigest()[:16]))
    sizes = {p.relative_to(out).as_posix(): p.stat().st_size for p in out.rglob("*") if p.is_file()}
    total = sum(sizes.values())
    say(f"web app ({runtime}, {fmt}): {out}, {len(sizes)} files, {total / 1e6:.1f} MB")
    return {"runtime": runtime, "format": fmt, "bytes": total, "files": sizes}


# The page's own policy (index.html), sent as a header too, where it also covers the other files and
# forbids framing (a <meta> policy cannot say frame-ancestors).
CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'; img-src 'self' blob: data:; "
       "media-src 'self' blob: mediastream:; style-src 'self'; worker-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class _Handler(http.server.SimpleHTTPRequestHandler):
    """The app's files only: no folder listings, nothing outside the folder (not even through a link),
    no software versions in the Server header."""
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                      ".js": "text/javascript", ".wasm": "application/wasm",
                      ".webmanifest": "application/manifest+json", ".json": "application/json",
                      ".onnx": "application/octet-stream", ".tflite": "application/octet-stream"}
    server_version = "edgedigits"
    timeout = 30  # seconds a client may stay silent: a stalled phone holds no thread for ever

    def setup(self):
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):  # TLS handshake here, in this client's own thread,
            self.connection.do_handshake()  # so a client that never finishes it blocks no one else

    def version_string(self):
        return self.server_version  # not "SimpleHTTP/0.6 Python/3.x.y"

    def end_headers(self):
        self.send_header("Cache-Control", "no-cache")  # the service worker does the caching
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("Referrer-Policy", "no-referrer")
        super().end_headers()

    def send_head(self):
        path = os.path.realpath(self.translate_path(self.path))  # links resolved
        root = os.path.realpath(self.directory)
        if path != root and not path.startswith(root + os.sep):
            self.send_error(404, "File not found")
            return None
        return super().send_head()

    def list_directory(self, path):
        self.send_error(404, "File not found")
        return None

    def log_message(self, fmt, *args):
        if os.environ.get("EDGEDIGITS_SERVE_LOG"):
            super().log_message(fmt, *args)


def make_server(folder: Path, host: str = "127.0.0.1", port: int = 8000) -> http.server.ThreadingHTTPServer:
    folder = Path(folder)
    if not (folder / "index.html").is_file():
        raise EdgeDigitsError(f"{folder}: no index.html; build the app with `edgedigits deploy --target web --out {folder}`")
    try:
        return _Server((host, port), partial(_Handler, directory=str(folder)))
    except OSError as e:
        raise EdgeDigitsError(f"cannot serve on {host}:{port}: {e.strerror or e}") from None


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """One line, never a traceback: a client that goes away early (a phone locking its screen, a
        closed tab, a failed TLS handshake) is normal on a network."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError, ssl.SSLError)):
            return
        print(f"warning: {client_address[0]}: {type(error).__name__}: {error}", file=sys.stderr)
