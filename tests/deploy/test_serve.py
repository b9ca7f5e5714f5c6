"""`edgedigits serve`: what it sends (headers), what it refuses (listings, links out of the folder,
`..`), and that clients going away early or speaking plain HTTP to HTTPS cost no traceback."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest


@pytest.fixture
def app(tmp_path) -> Path:
    """An app folder with a sub-folder (no index.html), links out of it and a secret beside it."""
    (tmp_path / "secret.txt").write_text("secret")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "index.html").write_text("outside")
    folder = tmp_path / "app"
    (folder / "sub").mkdir(parents=True)
    (folder / "index.html").write_text("<p>app</p>")
    (folder / "sub" / "model.onnx").write_bytes(b"m")
    (folder / "big.bin").write_bytes(os.urandom(8 << 20))
    (folder / "secret.txt").symlink_to(tmp_path / "secret.txt")
    (folder / "outside").symlink_to(tmp_path / "outside")
    return folder


@pytest.fixture
def served(app):
    from edgedigits.deploy.webapp import make_server

    server = make_server(app, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def get(port: int, path: str):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), body


def test_headers(served):
    status, headers, body = get(served, "/")
    assert status == 200 and body == b"<p>app</p>"
    assert headers["X-Content-Type-Options"] == "nosniff"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert headers["Server"] == "edgedigits"  # no Python version for a scanner to match
    assert "Python" not in str(headers)


@pytest.mark.parametrize("path", ["/sub/", "/secret.txt", "/outside", "/outside/", "/outside/index.html",
                                  "/../secret.txt", "/%2e%2e/secret.txt", "/sub/../../secret.txt"])
def test_refuses_listings_and_everything_outside_the_folder(served, path):
    status, _, body = get(served, path)
    assert status == 404, (path, body[:200])
    assert b"secret" not in body and b"outside" not in body and b"model.onnx" not in body


def test_files_inside_are_served(served):
    assert get(served, "/sub/model.onnx")[:1] == (200,)


def serve(folder: Path, *args: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "edgedigits", "serve", str(folder), "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = proc.stdout.readline()
    assert "serving" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc, int(line.rsplit(":", 1)[1].split("/")[0])


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    return err


def test_clients_that_go_away_early_cost_no_traceback_and_all_interfaces_warn(app):
    proc, port = serve(app, "--host", "0.0.0.0")
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(100)  # the answer has begun ...
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # ... and the client resets the connection
        socket.create_connection(("127.0.0.1", port)).close()  # connects, says nothing, leaves
    assert get(port, "/")[0] == 200  # still serving
    err = stop(proc)
    assert "warning: serving on 0.0.0.0 without TLS" in err
    assert "Traceback" not in err, err


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command to make a certificate")
def test_https_with_a_certificate_and_plain_http_against_it(app, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    proc, port = serve(app, "--cert", str(cert), "--key", str(key))
    silent = socket.create_connection(("127.0.0.1", port))  # connects and never starts TLS: blocks no one
    ctx = ssl.create_default_context(cafile=str(cert))
    conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
    conn.request("GET", "/")
    r = conn.getresponse()
    assert r.status == 200 and r.read() == b"<p>app</p>"
    conn.close()
    s = socket.create_connection(("127.0.0.1", port))  # plain HTTP to an HTTPS server: a failed handshake
    s.sendall(b"GET / HTTP/1.1\r\n\r\n")
    try:
        answer = s.recv(100)
    except OSError:  # the server drops it
        answer = b""
    assert not answer.startswith(b"HTTP")
    s.close()
    silent.close()
    err = stop(proc)
    assert "Traceback" not in err and "warning" not in err, err
