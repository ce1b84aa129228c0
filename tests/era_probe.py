"""Run with an app's own interpreter (any SDK era): what the app at URL answers, as one line of JSON.

    python era_probe.py gradio URL '[["/greet", ["Ada"]], ...]'
    python era_probe.py streamlit URL STREAM_PATH

Gradio: the named endpoints gradio_client of the app's era reports, and each call's output. Streamlit: one script
run over its WebSocket (tornado's client: every Streamlit era ships tornado), the kinds of element it rendered,
their text, and any exception. This file imports nothing of spaces_runtime, so it runs in any virtualenv.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any


def gradio(url: str, calls: list[list[Any]]) -> dict[str, Any]:
    from gradio_client import Client

    client = Client(url, verbose=False)
    api = client.view_api(print_info=False, return_format="dict")
    outputs = {name: client.predict(*args, api_name=name) for name, args in calls}
    return {"endpoints": sorted(api["named_endpoints"]), "outputs": outputs}


async def _streamlit_run(ws_url: str, timeout: float) -> dict[str, Any]:
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from tornado.websocket import websocket_connect

    connection = await asyncio.wait_for(websocket_connect(ws_url, subprotocols=["streamlit"]), timeout)
    request = BackMsg()
    request.rerun_script.query_string = ""
    await connection.write_message(request.SerializeToString(), binary=True)
    elements: list[str] = []
    texts: list[str] = []
    errors: list[str] = []
    while True:
        raw = await asyncio.wait_for(connection.read_message(), timeout)
        if raw is None:
            raise RuntimeError("the app closed its WebSocket before the script finished")
        message = ForwardMsg()
        message.ParseFromString(raw if isinstance(raw, bytes) else raw.encode())
        kind = message.WhichOneof("type")
        if kind == "script_finished":
            break
        if kind == "delta" and message.delta.WhichOneof("type") == "new_element":
            element = message.delta.new_element
            name = str(element.WhichOneof("type"))
            elements.append(name)
            if name in ("markdown", "text", "heading"):
                texts.append(getattr(element, name).body)
            if name == "exception":
                errors.append(f"{element.exception.type}: {element.exception.message}")
    connection.close()
    return {"elements": elements, "texts": texts, "exceptions": errors}


def streamlit(url: str, stream_path: str, timeout: float = 90) -> dict[str, Any]:
    ws_url = url.replace("http://", "ws://").rstrip("/") + "/" + stream_path.lstrip("/")
    return asyncio.run(_streamlit_run(ws_url, timeout))


def main(argv: list[str]) -> None:
    sdk, url, argument = argv[1], argv[2], argv[3]
    result = gradio(url, json.loads(argument)) if sdk == "gradio" else streamlit(url, argument)
    print(json.dumps(result, sort_keys=True, default=str))


if __name__ == "__main__":
    main(sys.argv)
