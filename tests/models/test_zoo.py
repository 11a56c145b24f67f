"""models.zoo: the real torch.hub download against a local HTTP server, the cache, and serving by name.

Nothing in the download path is mocked: `torch.hub.download_url_to_file` talks to an `http.server` on
127.0.0.1 that serves a small seeded checkpoint named `<stem>-<first 8 hex of its sha256>.pth`, as torchvision
names its files. Only the catalogue (names -> URLs) is swapped for a test entry, since the real torchvision
names embed hashes that a small file cannot match.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import threading
from pathlib import Path

import pytest
import torch

import models
from models import zoo
from models.weights import WeightsError
from service.config import Settings


def tiny_checkpoint_bytes() -> bytes:
    """A seeded tiny model's state dict, as torch.save writes it."""
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.save(models.build_model(models.preset("tiny")).state_dict(), buffer)
    return buffer.getvalue()


class FileServer:
    """http.server on 127.0.0.1 in a thread: `files` by name; names in `truncate` promise more bytes than sent."""

    def __init__(self, files: dict[str, bytes], truncate: frozenset[str] = frozenset()) -> None:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.rsplit("/", 1)[-1]
                body = outer.files.get(name)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body) + (4096 if name in truncate else 0)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if name in truncate else body)
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.files = files
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def entry(url: str, name: str = "tiny_test") -> zoo.Checkpoint:
    return zoo.Checkpoint(name=name, url=url, architecture="tiny", categories=("__background__", "a", "b"))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty TORCH_HOME: the cache is tmp/hub/checkpoints; no mirror from the outer environment."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv(zoo.MIRROR_ENV, raising=False)
    assert zoo.cache_dir() == tmp_path / "hub" / "checkpoints"
    return tmp_path


@pytest.fixture(scope="module")
def payload() -> tuple[bytes, str]:
    """(checkpoint bytes, its torchvision-style file name with the sha256 prefix)."""
    data = tiny_checkpoint_bytes()
    return data, f"tiny_test-{hashlib.sha256(data).hexdigest()[:8]}.pth"


def cache_files(torch_home: Path) -> list[str]:
    folder = torch_home / "hub" / "checkpoints"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_catalogue_comes_from_torchvision_weights_enums() -> None:
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights

    names = [c.name for c in zoo.catalogue()]
    assert names == ["maskrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn_v2", "keypointrcnn_resnet50_fpn"]
    v2 = zoo.find("maskrcnn_resnet50_fpn_v2")
    assert v2.url == MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1.url
    assert v2.categories == tuple(MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1.meta["categories"])
    assert v2.size_mb == MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1.meta["_file_size"]
    assert v2.classes == 80 and v2.servable
    assert zoo.find("maskrcnn_resnet50_fpn").hash_prefix == "bf2d0c1e"
    keypoint = zoo.find("keypointrcnn_resnet50_fpn")
    assert keypoint.servable and keypoint.keypoints == 17
    assert keypoint.summary() == "Keypoint R-CNN, ResNet-50 FPN, 1 COCO class (person), 17 keypoints"
    with pytest.raises(KeyError, match="maskrcnn_resnet50_fpn_v2"):
        zoo.find("resnet9000")


def test_pull_with_the_right_hash_lands_in_the_torch_cache(torch_home: Path, payload: tuple[bytes, str]) -> None:
    data, filename = payload
    with FileServer({filename: data}) as server:
        path = zoo.pull(entry(server.url + "models/" + filename), progress=False)
    assert path == torch_home / "hub" / "checkpoints" / filename
    assert path.read_bytes() == data
    assert cache_files(torch_home) == [filename]  # no temporary file left beside it


def test_pull_through_the_mirror_appends_the_file_name(
    torch_home: Path, payload: tuple[bytes, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, filename = payload
    with FileServer({filename: data}) as server:
        monkeypatch.setenv(zoo.MIRROR_ENV, server.url + "mirror")  # with or without the trailing slash
        checkpoint = entry("https://download.invalid/models/" + filename)
        assert zoo.source_url(checkpoint) == server.url + "mirror/" + filename
        assert zoo.pull(checkpoint, progress=False).read_bytes() == data


def test_pull_with_a_wrong_hash_fails_and_leaves_the_cache_empty(torch_home: Path, payload: tuple[bytes, str]) -> None:
    data, _ = payload
    wrong = "tiny_test-00000000.pth"
    assert not hashlib.sha256(data).hexdigest().startswith("00000000")
    with FileServer({wrong: data}) as server, pytest.raises(zoo.DownloadError) as info:
        zoo.pull(entry(server.url + wrong), progress=False)
    message = str(info.value)
    assert "corrupt or truncated" in message and "00000000" in message and "\n" not in message
    assert cache_files(torch_home) == []


def test_truncated_transfer_fails_and_leaves_the_cache_empty(torch_home: Path, payload: tuple[bytes, str]) -> None:
    data, filename = payload
    with FileServer({filename: data}, truncate=frozenset({filename})) as server, pytest.raises(zoo.DownloadError):
        zoo.pull(entry(server.url + filename), progress=False)
    assert cache_files(torch_home) == []


def test_server_gone_is_one_line_naming_the_url_the_mirror_and_the_cache_path(torch_home: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/tiny_test-0123abcd.pth"
    with pytest.raises(zoo.DownloadError) as info:
        zoo.pull(entry(url), progress=False)
    message = str(info.value)
    assert message.startswith(f"cannot download tiny_test from {url}: ")
    assert zoo.MIRROR_ENV in message and str(torch_home / "hub" / "checkpoints" / "tiny_test-0123abcd.pth") in message
    assert "\n" not in message and cache_files(torch_home) == []


def test_a_file_name_without_a_sha256_prefix_is_never_downloaded(torch_home: Path) -> None:
    with FileServer({"tiny.pth": b"anything"}) as server, pytest.raises(zoo.DownloadError, match="no sha256 prefix"):
        zoo.pull(entry(server.url + "tiny.pth"), progress=False)
    assert cache_files(torch_home) == []


def test_http_error_is_reported_with_its_status(torch_home: Path) -> None:
    with FileServer({}) as server, pytest.raises(zoo.DownloadError, match="HTTP 404"):
        zoo.pull(entry(server.url + "tiny_test-0123abcd.pth"), progress=False)


def test_a_pulled_checkpoint_serves_by_name_from_the_cache(
    torch_home: Path, payload: tuple[bytes, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, filename = payload
    with FileServer({filename: data}) as server:
        checkpoint = entry(server.url + filename)
        monkeypatch.setattr(zoo, "catalogue", lambda: (checkpoint,))
        with pytest.raises(WeightsError, match="`maskrcnn weights pull tiny_test` fetches it"):
            Settings(weights="tiny_test").weights_path()
        path = zoo.pull(checkpoint, progress=False)
    assert Settings(weights="tiny_test").weights_path() == path
    # Not a name: a path keeps meaning a path, and an unknown bare word is left for loading to report.
    assert Settings(weights=str(path)).weights_path() == path
    assert Settings(weights="no_such_weights").weights_path() == Path("no_such_weights")


def test_serve_with_a_name_not_in_the_cache_exits_2_with_the_pull_command(
    torch_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from service import cli

    monkeypatch.setenv("MASKRCNN_WEIGHTS", "maskrcnn_resnet50_fpn")
    assert cli.serve(["--port", str(closed_port())]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("maskrcnn serve: "), err
    assert "`maskrcnn weights pull maskrcnn_resnet50_fpn` fetches it" in err
