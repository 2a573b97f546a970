"""mlhub-admin's API client: a hub that is still starting (right after
`docker compose restart hub`) is waited for, briefly; one that stays down is
reported, not raised."""

from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest

from hub.admin_cli import Api, CliError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hub(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'[{"name": "alice"}]'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_hub_that_comes_up_within_the_wait_answers():
    port = free_port()
    servers = []

    def start_later():
        time.sleep(1.5)
        srv = http.server.HTTPServer(("127.0.0.1", port), Hub)
        servers.append(srv)
        srv.serve_forever()

    threading.Thread(target=start_later, daemon=True).start()
    api = Api(f"http://127.0.0.1:{port}/hub/api", "token")
    try:
        assert api("GET", "/users") == [{"name": "alice"}]
    finally:
        for srv in servers:
            srv.shutdown()


def test_a_hub_that_stays_down_is_reported():
    api = Api(f"http://127.0.0.1:{free_port()}/hub/api", "token")
    api.connect_wait = 1
    with pytest.raises(CliError, match="does not answer"):
        api("GET", "/users")
