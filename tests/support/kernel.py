"""Run code in a Jupyter kernel through the kernel protocol (websocket), as JupyterLab does."""

from __future__ import annotations

import json
import re
import time
import uuid


import websocket

from .hubapi import Hub, HubError, quote


def _msg(msg_type: str, content: dict, session: str) -> dict:
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "username": "tests",
            "session": session,
            "msg_type": msg_type,
            "version": "5.3",
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        "parent_header": {},
        "metadata": {},
        "content": content,
        "channel": "shell",
        "buffers": [],
    }


def run_code(hub: Hub, token: str, user: str, code: str, timeout: float = 300) -> str:
    """Start a kernel in ``user``'s server, run ``code``, return its stdout; raise on error."""
    r = hub.server_api(token, user, "POST", "api/kernels", json={"name": "python3"})
    if r.status_code != 201:
        raise HubError(f"start kernel: {r.status_code} {r.text[:300]}")
    kernel_id = r.json()["id"]
    ws_url = hub.url(f"/user/{quote(user)}/api/kernels/{kernel_id}/channels").replace("http", "ws", 1)
    session = uuid.uuid4().hex
    ws = websocket.create_connection(
        ws_url + f"?session_id={session}", header=[f"Authorization: token {token}"], timeout=timeout
    )
    try:
        req = _msg("execute_request", {
            "code": code, "silent": False, "store_history": False,
            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True,
        }, session)
        ws.send(json.dumps(req))
        # execute_reply comes on the shell channel, output on iopub: the websocket
        # may deliver the reply before the last output, so the run is over only
        # when both the reply and iopub's status "idle" for this request are in
        out: list[str] = []
        replied = idle = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != req["header"]["msg_id"]:
                continue
            kind = msg["msg_type"]
            if kind == "stream" and msg["content"]["name"] == "stdout":
                out.append(msg["content"]["text"])
            elif kind == "error":
                tb = "\n".join(msg["content"]["traceback"])
                raise HubError("kernel error:\n" + re.sub(r"\x1b\[[0-9;]*m", "", tb))
            elif kind == "execute_reply":
                if msg["content"]["status"] != "ok":
                    raise HubError(f"execute_reply {msg['content']}")
                replied = True
            elif kind == "status" and msg["content"].get("execution_state") == "idle":
                idle = True
            if replied and idle:
                return "".join(out)
        raise HubError(f"kernel did not answer in {timeout}s")
    finally:
        ws.close()
        hub.server_api(token, user, "DELETE", f"api/kernels/{kernel_id}")
