"""Multipart bodies as clients really send them: RFC 2231 `filename*` parts are files, a text part where a file
belongs is a clear 422, and a body cut short is a 400 malformed_multipart (not "field required")."""

from __future__ import annotations

import httpx
from service_helpers import LiveServer, photo_bytes

BOUNDARY = "Xq9boundary"


def _body(disposition: str, data: bytes, close: bool = True, epilogue: bytes = b"") -> bytes:
    part = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"{disposition}\r\n'
    part += "Content-Type: image/jpeg\r\n\r\n"
    return part.encode() + data + (f"\r\n--{BOUNDARY}--\r\n".encode() + epilogue if close else b"")


def _post(server: LiveServer, body: bytes, route: str = "/detect") -> httpx.Response:
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    with server.client() as client:
        return client.post(route, content=body, headers=headers, params={"masks": "false"})


def test_a_part_named_only_by_rfc2231_filename_star_is_the_file(server: LiveServer) -> None:
    for disposition in ("; filename*=utf-8''%E7%8C%AB.jpg", "; FILENAME*=UTF-8''chat%20noir.jpg"):
        response = _post(server, _body(disposition, photo_bytes()))
        assert response.status_code == 200, response.text
        assert response.json()["image"] == {"width": 451, "height": 300}


def test_a_text_part_where_the_image_belongs_is_a_clear_422(server: LiveServer) -> None:
    response = _post(server, _body("", b"not a file, a form field"))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "not_a_file" and "filename" in error["message"], error


def test_a_body_cut_short_is_malformed_multipart(server: LiveServer) -> None:
    whole = _body('; filename="cat.jpg"', photo_bytes())
    for cut in (len(whole) // 2, len(whole) - len(f"--{BOUNDARY}--\r\n") - 2, 60):  # in the file, before the end
        response = _post(server, whole[:cut])
        assert response.status_code == 400, (cut, response.text)
        assert response.json()["error"]["code"] == "malformed_multipart"
    # The closing boundary may be followed by an epilogue (RFC 2046): still a whole body.
    assert _post(server, _body('; filename="cat.jpg"', photo_bytes(), epilogue=b"bye\r\n")).status_code == 200
    assert _post(server, whole, route="/detect/batch").status_code == 422  # whole, but no `images` part
