"""`edgedigits deploy`."""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path

from edgedigits.contract import CONFIDENCE


def register(make, sub) -> None:
    p = make(sub, "deploy", "Recognize digits live from a camera, a video, images or a stream, on the CPU or an Edge TPU.", """\
        examples:
          edgedigits deploy                                  # webcam 0, shipped 'standard' model, int8 on the CPU
          edgedigits deploy --source photo.jpg --headless    # one JSON line per image
          edgedigits deploy --source photos/ --save annotated/
          edgedigits deploy --source crops/ --single --headless   # each image is one digit (a crop)
          edgedigits deploy --source video.mp4 --headless --smooth 0.5
          edgedigits deploy --source 0 --collect my_digits/     # keep every digit read, to fine-tune on
          edgedigits deploy --source rtsp://192.168.1.20/stream
          edgedigits deploy --manifest out/standard --target edgetpu --fallback cpu
          edgedigits deploy --target web --out webapp/ && edgedigits serve webapp/   # on the phone

        targets: cpu (LiteRT int8 with XNNPACK), onnx (ONNX Runtime), edgetpu (Coral, via libedgetpu),
                 web (writes an offline web app that runs the model in the phone's browser, to --out).
        JSON lines: {"source", "frame", "digits": [{"label", "confidence", "box": [x, y, w, h]}], "text"}
        A digit below --confidence is shown as "?". The run ends with per-stage timings and FPS.
        Digits are found at any size, from a small digit in a 12-megapixel photo to one filling the frame;
        an image of at most 64 pixels a side is read as one digit, as --single reads every image.""")
    p.add_argument("--source", default="0", help="camera index, video file, image, folder of images, or rtsp/http URL")
    p.add_argument("--manifest", type=Path, help="manifest.json (or its folder) from `edgedigits convert`; "
                                                 "default: the shipped pretrained model")
    p.add_argument("--model", default="standard", choices=["standard", "tiny"], help="which shipped model, without --manifest")
    p.add_argument("--target", default="cpu", choices=["cpu", "onnx", "edgetpu", "web"])
    p.add_argument("--out", type=Path, help="web: the folder to write the app into")
    p.add_argument("--web-runtime", default="onnxruntime-web", choices=["onnxruntime-web"],
                   help="web: the in-browser runtime (ONNX Runtime Web on WebAssembly)")
    p.add_argument("--format", help="run this manifest format instead of the target's default (e.g. tflite_fp32)")
    p.add_argument("--device", help="Edge TPU device: usb, pci, usb:0, pci:1 (default: the first found)")
    p.add_argument("--fallback", choices=["cpu"], help="when the Edge TPU cannot be used, run the int8 model on the CPU")
    p.add_argument("--threads", type=int, default=1, help="inference threads")
    p.add_argument("--confidence", type=float, default=CONFIDENCE, help="below this probability a digit shows as '?'")
    p.add_argument("--smooth", type=float, default=0.0, help="weight of previous frames in live video (0 to 0.9)")
    p.add_argument("--verifier", action=argparse.BooleanOptionalAction, default=True,
                   help="segmentation by recognition: the digit verifier decides what is a digit and where one ends, "
                        "so clutter, letters and texture are not read as digits and joined digits are cut (default); "
                        "--no-verifier: the geometric rules alone (faster, reads clutter as digits)")
    p.add_argument("--single", action="store_true",
                   help="each image or frame is one digit (a crop): all its ink is read as that digit")
    p.add_argument("--headless", action="store_true", help="print JSON lines instead of opening a window")
    p.add_argument("--save", type=Path, metavar="DIR", help="write annotated images or video here")
    p.add_argument("--collect", type=Path, metavar="DIR",
                   help="write every digit read, as the model saw it (28x28 PNG), to DIR/<label>/, named by its "
                        "frame and box; fix misreads by moving files, then `train --data DIR --from MODEL`")
    p.add_argument("--reconnect", type=int, default=3, help="cameras and streams: reconnection attempts (in all) when frames stop coming")
    p.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0: until the source ends)")
    p.set_defaults(run=run_deploy)

    s = make(sub, "serve", "Serve a built web app on this machine, to open it in a browser or on a phone.", """\
        examples:
          edgedigits serve webapp/                         # http://127.0.0.1:8000
          edgedigits serve webapp/ --host 0.0.0.0 --port 8443 --cert cert.pem --key key.pem

        The camera needs a secure context: http://localhost works on this machine; a phone on the same
        network needs HTTPS (--cert/--key, e.g. a certificate from mkcert), or a tunnel to localhost
        such as `adb reverse tcp:8000 tcp:8000` for an Android phone over USB.""")
    s.add_argument("folder", type=Path)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--cert", type=Path, help="TLS certificate (PEM) for HTTPS")
    s.add_argument("--key", type=Path, help="TLS private key (PEM)")
    s.set_defaults(run=run_serve)


def run_serve(args) -> int:
    import ssl

    from edgedigits import checks
    from edgedigits.deploy.webapp import make_server
    from edgedigits.errors import EdgeDigitsError

    checks.in_range("--port", args.port, 0, 65535, " (0: any free port)")
    if args.key and not args.cert:
        raise EdgeDigitsError(f"--key {args.key}: give the certificate too, with --cert")
    ctx = None
    if args.cert:
        checks.input_file("--cert", args.cert)
        checks.input_file("--key", args.key)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            ctx.load_cert_chain(args.cert, args.key)
        except (ssl.SSLError, OSError, ValueError) as e:
            why = getattr(e, "reason", None) or getattr(e, "strerror", None) or str(e)
            raise EdgeDigitsError(f"--cert {args.cert}{' --key ' + str(args.key) if args.key else ''}: not a "
                                  f"usable PEM certificate and private key ({why})") from None
    elif args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host} without TLS: anyone on the network can read the traffic, and "
              f"a phone's browser opens the camera only over HTTPS; give --cert and --key", file=sys.stderr)
    server = make_server(args.folder, args.host, args.port)
    scheme = "http"
    if ctx:
        server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        scheme = "https"
    print(f"serving {args.folder} on {scheme}://{args.host}:{server.server_address[1]}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _check_deploy(args) -> None:
    """Every option, and the folders to write, before a model is loaded or a frame is read."""
    from edgedigits import checks
    from edgedigits.formats import FORMATS
    from edgedigits.errors import EdgeDigitsError

    checks.at_least("--threads", args.threads, 1)
    checks.in_range("--confidence", args.confidence, 0, 1)
    checks.at_least("--max-frames", args.max_frames, 0)
    checks.at_least("--reconnect", args.reconnect, 0)
    if args.source.isdigit() and (not args.source.isascii() or int(args.source) > 255):
        raise EdgeDigitsError(f"--source {args.source}: not a camera index (0 to 255), nor a file")
    if args.format and args.format not in FORMATS:
        raise EdgeDigitsError(f"--format {args.format}: no such format; choose one of: {', '.join(FORMATS)}")
    if args.target == "web":
        if not args.out:
            raise EdgeDigitsError("--target web writes an app: give the folder with --out DIR")
        checks.output_folder("--out", args.out)
        if args.out.is_dir() and any(args.out.iterdir()) and not (args.out / "model.json").is_file():
            raise EdgeDigitsError(f"--out {args.out}: holds files and is not a built web app; it would be "
                                  f"replaced whole: choose a new or empty folder")
    checks.output_folder("--save", args.save)
    checks.output_folder("--collect", args.collect)
    source = Path(args.source)
    if args.collect and args.target == "web":
        raise EdgeDigitsError("--collect: the web app saves its digits with its 'Save crops' button; "
                              "--collect works with --target cpu, onnx or edgetpu")
    if args.collect and source.is_dir() and args.collect.resolve() == source.resolve():
        raise EdgeDigitsError(f"--collect {args.collect}: the folder of the source images; collect into "
                              f"another folder")
    if args.save and source.is_dir() and args.save.resolve() == source.resolve():
        raise EdgeDigitsError(f"--save {args.save}: the folder of the source images; annotated images would "
                              f"replace or join them: choose another folder")


def run_deploy(args) -> int:
    _check_deploy(args)
    import cv2

    from edgedigits.atomic import folder_lock
    from edgedigits.deploy import camera, shipped_manifest
    from edgedigits.deploy.runners import from_manifest
    from edgedigits.deploy.sources import IMAGE_SUFFIXES, open_source
    from edgedigits.errors import EdgeDigitsError, Interrupted

    if args.target == "web":
        from edgedigits.deploy.webapp import build

        build(args.manifest or shipped_manifest(args.model), args.out, args.web_runtime, args.format, verifier=args.verifier)
        print(f"serve it with: edgedigits serve {args.out}")
        return 0
    if not 0 <= args.smooth < 1:
        raise EdgeDigitsError(f"--smooth {args.smooth}: must be in [0, 1)")
    cv2.setNumThreads(1)
    manifest = args.manifest or shipped_manifest(args.model)
    say = lambda msg: print(msg, file=sys.stderr)  # noqa: E731  stdout carries the JSON lines
    runner = from_manifest(manifest, args.target, args.threads, args.device, args.fallback, args.format, say,
                           verifier=args.verifier)
    frames = open_source(args.source, retries=args.reconnect)
    src = Path(args.source)
    is_video = not (src.is_dir() or src.suffix.lower() in IMAGE_SUFFIXES)
    collect = None
    if args.collect:
        from edgedigits.deploy.collect import Collector

        collect = Collector(args.collect, runner.labels)
    with ExitStack() as held:
        if args.save:  # a second run saving into this folder is refused while this one writes there
            args.save.parent.mkdir(parents=True, exist_ok=True)
            held.enter_context(folder_lock(args.save, "--save"))
        t = camera.run(frames, runner, confidence=args.confidence, smooth=args.smooth, headless=args.headless,
                       save_dir=args.save, max_frames=args.max_frames, is_video=is_video,
                       single=args.single, collect=collect)
    say(camera.summarize(t, t["frames"], t["wall"]))
    if collect:
        say(f"collected {collect.written} digits into {args.collect}/<label>/")
    if t.get("interrupted"):
        kept = t.get("saved") or (f"what was annotated is in {args.save}" if args.save and t["frames"] else "")
        raise Interrupted(f"interrupted after {t['frames']} frames" + (f"; {kept}" if kept else ""))
    if not t["frames"]:
        raise EdgeDigitsError(f"{args.source}: no frame could be read (see the warnings above)")
    return 0
