import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ciess_env.data import REMOTE_FILES, RemoteFile, fetch, load_dataset
from ciess_env.data.datasets import CANONICAL_STATS, DatasetStats
from ciess_env.errors import DataFormatError, DataNotFoundError, DatasetIntegrityError

PAYLOAD = b"0 1 2 3\n1 2 3\n" * 1000


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files[path]``; ``/broken`` promises more bytes than it sends."""

    def do_GET(self):
        files = self.server.files
        if self.path == "/broken":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD) * 2))
            self.end_headers()
            self.wfile.write(PAYLOAD)
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if self.path not in files:
            self.send_error(404)
            return
        body = files[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def server(monkeypatch):
    """A local HTTP server on 127.0.0.1 in a thread; yields (base_url, files dict)."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files = {"/train.txt": PAYLOAD}
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.files
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def remote(monkeypatch, server):
    """Points REMOTE_FILES['yelp2018/train.txt'] at the local server with the right hash."""
    base, _ = server
    entry = RemoteFile(
        f"{base}/train.txt", "yelp2018/train.txt", hashlib.sha256(PAYLOAD).hexdigest()
    )
    monkeypatch.setitem(REMOTE_FILES, "yelp2018/train.txt", entry)
    return entry


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _all_files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_download_with_correct_hash_saves_the_file(tmp_path, remote):
    """A verified download lands at data_dir/relpath with the served bytes, nothing else."""
    path = fetch("yelp2018/train.txt", tmp_path, progress_bar=False)
    assert path == tmp_path / "yelp2018" / "train.txt"
    assert path.read_bytes() == PAYLOAD
    assert _all_files(tmp_path) == ["yelp2018/train.txt"]


def test_verified_file_is_reused_without_network(tmp_path, remote, monkeypatch):
    """Once downloaded, fetch returns the cached file even if the URL is unreachable."""
    fetch("yelp2018/train.txt", tmp_path, progress_bar=False)
    dead = remote._replace(url=f"http://127.0.0.1:{_free_port()}/train.txt")
    monkeypatch.setitem(REMOTE_FILES, "yelp2018/train.txt", dead)
    assert fetch("yelp2018/train.txt", tmp_path, progress_bar=False).read_bytes() == PAYLOAD


def test_wrong_hash_is_refused_and_leaves_nothing(tmp_path, remote):
    """A hash mismatch raises DatasetIntegrityError naming both hashes; no file is left."""
    wrong = "0" * 64
    found = hashlib.sha256(PAYLOAD).hexdigest()
    with pytest.raises(DatasetIntegrityError) as info:
        fetch("yelp2018/train.txt", tmp_path, sha256=wrong, progress_bar=False)
    message = str(info.value)
    assert f"has SHA-256 {found}, expected {wrong}" in message
    assert str(tmp_path / "yelp2018" / "train.txt") in message
    assert _all_files(tmp_path) == []


def test_server_down_names_url_and_target_path(tmp_path, remote):
    """A refused connection raises DataNotFoundError naming the URL and where to put the file."""
    url = f"http://127.0.0.1:{_free_port()}/train.txt"
    target = tmp_path / "yelp2018" / "train.txt"
    with pytest.raises(DataNotFoundError, match=re.escape(f"Could not download {url} (")) as info:
        fetch("yelp2018/train.txt", tmp_path, url=url, progress_bar=False)
    assert f"save it as {str(target)!r}" in str(info.value)
    assert _all_files(tmp_path) == []


def test_http_404_is_a_data_not_found_error(tmp_path, server):
    """A missing remote file (HTTP 404) raises DataNotFoundError naming the URL."""
    url = f"{server[0]}/missing.txt"
    with pytest.raises(DataNotFoundError, match=re.escape(f"Could not download {url}")):
        fetch("yelp2018/train.txt", tmp_path, url=url, progress_bar=False)
    assert _all_files(tmp_path) == []


def test_interrupted_download_leaves_no_partial_file(tmp_path, server):
    """A connection dropped mid-transfer raises DataNotFoundError and leaves no (temp) file."""
    url = f"{server[0]}/broken"
    with pytest.raises(DataNotFoundError, match=re.escape(f"Could not download {url}")):
        fetch("yelp2018/train.txt", tmp_path, url=url, progress_bar=False)
    assert _all_files(tmp_path) == []


def test_registry_holds_the_official_urls_and_hashes():
    """The default URLs are GroupLens and the LightGCN repository, with 64-hex SHA-256s."""
    assert (
        REMOTE_FILES["ml-1m.zip"].url == "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
    )
    assert REMOTE_FILES["ml-100k.zip"].md5 == "0e33842e24a9c977be4e0107933c0723"
    assert REMOTE_FILES["yelp2018/test.txt"].url == (
        "https://raw.githubusercontent.com/kuandeng/LightGCN/master/Data/yelp2018/test.txt"
    )
    for entry in REMOTE_FILES.values():
        assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256)


def test_load_dataset_download_true_fetches_then_loads(tmp_path, server, monkeypatch):
    """load_dataset(download=True) downloads a missing ml-100k.zip, verifies and loads it."""
    base, files = server
    rows = [f"{u}\t{i}\t{1 + (u + i) % 5}\t88125{u}{i}" for u in range(1, 6) for i in range(10, 18)]
    archive = tmp_path / "served.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml-100k/u.data", "\n".join(rows) + "\n")
    files["/ml-100k.zip"] = archive.read_bytes()
    sha = hashlib.sha256(files["/ml-100k.zip"]).hexdigest()
    monkeypatch.setitem(
        REMOTE_FILES, "ml-100k.zip", RemoteFile(f"{base}/ml-100k.zip", "ml-100k.zip", sha)
    )
    monkeypatch.setitem(CANONICAL_STATS, "ml-100k", DatasetStats(5, 8, 40))
    data_dir = tmp_path / "data"
    data = load_dataset("ml-100k", data_dir=data_dir, download=True)
    assert (data_dir / "ml-100k.zip").is_file()
    assert (data.n_users, data.n_items, data.n_interactions) == (5, 8, 40)
    assert data.user_ids.tolist() == [1, 2, 3, 4, 5]


def _ml100k_archive(tmp_path, files, monkeypatch, base):
    """Serve a 5-user ml-100k.zip from the local server; return its bytes."""
    rows = [f"{u}\t{i}\t{1 + (u + i) % 5}\t88125{u}{i}" for u in range(1, 6) for i in range(10, 18)]
    archive = tmp_path / "served.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml-100k/u.data", "\n".join(rows) + "\n")
    body = archive.read_bytes()
    files["/ml-100k.zip"] = body
    sha = hashlib.sha256(body).hexdigest()
    monkeypatch.setitem(
        REMOTE_FILES, "ml-100k.zip", RemoteFile(f"{base}/ml-100k.zip", "ml-100k.zip", sha)
    )
    monkeypatch.setitem(CANONICAL_STATS, "ml-100k", DatasetStats(5, 8, 40))
    return body


@pytest.mark.parametrize(
    "cached", [b"PK\x03\x04 truncated download", b"not an archive at all", "half"]
)
def test_load_dataset_download_true_replaces_a_corrupt_cached_archive(
    tmp_path, server, monkeypatch, cached
):
    """A corrupt ml-100k.zip in the cache is hash-checked and fetched again, then loaded."""
    base, files = server
    body = _ml100k_archive(tmp_path, files, monkeypatch, base)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "ml-100k.zip").write_bytes(body[: len(body) // 2] if cached == "half" else cached)
    data = load_dataset("ml-100k", data_dir=data_dir, download=True)
    assert (data.n_users, data.n_items, data.n_interactions) == (5, 8, 40)
    assert (data_dir / "ml-100k.zip").read_bytes() == body
    assert _all_files(data_dir) == ["ml-100k.zip"]


def test_load_dataset_without_download_names_the_corrupt_archive_and_the_fix(
    tmp_path, server, monkeypatch
):
    """download=False never touches the network; the error names the file and download=True."""
    base, files = server
    body = _ml100k_archive(tmp_path, files, monkeypatch, base)
    (tmp_path / "ml-100k.zip").write_bytes(body[: len(body) // 2])
    with pytest.raises(DataFormatError, match="download=True") as info:
        load_dataset("ml-100k", data_dir=tmp_path)
    assert str(tmp_path / "ml-100k.zip") in str(info.value)


@pytest.fixture
def stalling_server(monkeypatch):
    """Serves half of PAYLOAD on /stall, then hangs until the test ends."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    release = threading.Event()

    class Stall(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            release.wait(30)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Stall)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/stall"
    release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_download_killed_midway_leaves_a_named_partial_that_the_next_run_removes(
    tmp_path, remote, stalling_server
):
    """SIGKILL during a download leaves '<name>.<pid>.ciess-partial'; the next fetch cleans it."""
    code = (
        "import sys; from ciess_env.data.download import fetch; "
        "fetch('yelp2018/train.txt', sys.argv[1], url=sys.argv[2], sha256=sys.argv[3], "
        "progress_bar=False)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path), stalling_server, remote.sha256],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    folder = tmp_path / "yelp2018"
    deadline = time.monotonic() + 60
    while not (folder.is_dir() and any(folder.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _all_files(tmp_path) == [f"yelp2018/train.txt.{proc.pid}.ciess-partial"]
    path = fetch("yelp2018/train.txt", tmp_path, progress_bar=False)
    assert path.read_bytes() == PAYLOAD
    assert _all_files(tmp_path) == ["yelp2018/train.txt"]


def test_partial_of_a_running_download_is_left_alone(tmp_path, remote):
    """A fresh partial whose process is alive (here: this one) is another download's file."""
    folder = tmp_path / "yelp2018"
    folder.mkdir()
    other = folder / f"train.txt.{os.getppid()}.ciess-partial"
    other.write_bytes(b"in progress")
    fetch("yelp2018/train.txt", tmp_path, progress_bar=False)
    assert _all_files(tmp_path) == [
        "yelp2018/train.txt",
        f"yelp2018/train.txt.{os.getppid()}.ciess-partial",
    ]
    old = time.time() - 2 * 3600
    os.utime(other, (old, old))  # untouched for hours: stale whatever its pid says
    (folder / "train.txt").unlink()
    fetch("yelp2018/train.txt", tmp_path, progress_bar=False)
    assert _all_files(tmp_path) == ["yelp2018/train.txt"]
