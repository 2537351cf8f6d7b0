"""The app as an MCP server: its tools as an MCP client lists them, and one tool called."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

from mmdemo.services import Services
from mmdemo.ui import api
from mmdemo.ui.app import build_app, launch_options
from tests.conftest import free_port


def test_search_caption_ask_and_classify_video_are_mcp_tools_and_one_answers(lite, tmp_path, monkeypatch):
    monkeypatch.delenv("MMDEMO_MCP", raising=False)
    demo = build_app(Services.create(lite, index_root=tmp_path / "index"))
    options = launch_options()
    assert options["mcp_server"] is True
    demo.launch(
        server_name="127.0.0.1",
        server_port=free_port(),
        prevent_thread_lock=True,
        quiet=True,
        mcp_server=options["mcp_server"],
    )
    try:
        url = demo.local_url.rstrip("/")
        with urllib.request.urlopen(f"{url}/gradio_api/mcp/schema", timeout=30) as response:
            schema = {tool["name"]: tool for tool in json.load(response)}
        tools = {name: tool for name, tool in schema.items() if tool["meta"]["mcp_type"] == "tool"}
        assert sorted(tools) == sorted(api.MCP_TOOLS)
        assert "query" in tools["search_text"]["inputSchema"]["properties"]
        assert "description" in tools["ask"]["inputSchema"]["properties"]["question"]

        async def listed_and_called() -> tuple[list[str], str]:
            async with (
                streamablehttp_client(f"{url}/gradio_api/mcp/") as (read, write, _),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                listed = await session.list_tools()
                result = await session.call_tool("search_text", {"query": "a cup of coffee", "k": 2})
                return [tool.name for tool in listed.tools], result.content[0].text

        # In a thread of its own: the browser tests' Playwright may hold an event loop on this thread.
        with ThreadPoolExecutor(1) as pool:
            names, text = pool.submit(asyncio.run, listed_and_called()).result(timeout=120)
        assert sorted(names) == sorted(api.MCP_TOOLS)
        assert "coffee.jpg" in text
    finally:
        demo.close()


def test_mcp_is_turned_off_by_setting(monkeypatch):
    monkeypatch.setenv("MMDEMO_MCP", "0")
    assert launch_options()["mcp_server"] is False
