"""The MNIST download against a real HTTP server on 127.0.0.1 serving the canonical files."""

import gzip
import http.server
import shutil
import threading
from functools import partial

import pytest

from edgedigits.errors import DataError
from edgedigits.train import mnist


class Handler(http.server.SimpleHTTPRequestHandler):
    cut_after = None  # bytes of a file to send before dropping the connection

    def log_message(self, *args):
        pass

    def copyfile(self, source, outputfile):
        if self.cut_after is None:
            return super().copyfile(source, outputfile)
        outputfile.write(source.read(self.cut_after))
        outputfile.flush()
        self.close_connection = True  # the server goes away mid-transfer


@pytest.fixture
def serve(tmp_path):
    servers = []

    def start(folder, cut_after=None):
        handler = type("H", (Handler,), {"cut_after": cut_after})
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(folder)))
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_download_success_and_cache(serve, mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEDIGITS_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("EDGEDIGITS_MNIST_MIRRORS", "http://127.0.0.1:9/ " + serve(mnist_dir))  # first mirror is dead
    ds = mnist.load_mnist()
    assert len(ds.train) == 60000 and len(ds.test) == 10000
    cache = tmp_path / "cache" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(mnist.FILES)
    # cached now: a second load needs no server
    monkeypatch.setenv("EDGEDIGITS_MNIST_MIRRORS", "http://127.0.0.1:9/")
    assert len(mnist.load_mnist().test) == 10000


def test_checksum_mismatch_leaves_nothing(serve, mnist_dir, tmp_path, monkeypatch):
    bad = tmp_path / "bad"
    shutil.copytree(mnist_dir, bad)
    raw = bytearray(gzip.decompress((bad / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    raw[100] = (raw[100] + 1) % 10  # one label changed: a valid archive with the wrong content
    (bad / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(raw)))
    monkeypatch.setenv("EDGEDIGITS_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("EDGEDIGITS_MNIST_MIRRORS", serve(bad))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: checksum mismatch"):
        mnist.load_mnist()
    cache = tmp_path / "cache" / "mnist"
    assert "t10k-labels-idx1-ubyte.gz" not in [p.name for p in cache.iterdir()]
    assert leftovers(cache) == []


def test_server_gone_mid_transfer(serve, mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEDIGITS_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("EDGEDIGITS_MNIST_MIRRORS", serve(mnist_dir, cut_after=5000))
    with pytest.raises(DataError, match=r"could not download train-images-idx3-ubyte.gz"):
        mnist.load_mnist()
    cache = tmp_path / "cache" / "mnist"
    assert list(cache.iterdir()) == []  # no partial file, no temporary file


def test_corrupt_cached_file_is_named(mnist_dir, tmp_path, monkeypatch):
    cache = tmp_path / "cache" / "mnist"
    shutil.copytree(mnist_dir, cache)
    (cache / "README.md").unlink()
    f = cache / "train-labels-idx1-ubyte.gz"
    f.write_bytes(f.read_bytes()[:-50])
    monkeypatch.setenv("EDGEDIGITS_DATA", str(tmp_path / "cache"))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz: corrupt or truncated gzip"):
        mnist.load_mnist()


def test_recompressed_archive_verifies_by_content(mnist_dir):
    # the shared train-images archive was re-compressed: its gz hash differs, its content does not
    assert mnist.content_md5(mnist_dir / "train-images-idx3-ubyte.gz") == mnist.FILES["train-images-idx3-ubyte.gz"]
