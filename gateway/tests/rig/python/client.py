"""Calls one tool of an MCP server with the official Python SDK's Streamable
HTTP client, sending the meinGPT token as meinGPT does (`X-meinGPT-JWT`).

    client.py URL TOOL [TOKEN]

Prints `result: TEXT` and exits 0, or prints `error: STATUS` (the HTTP status
that ended the session, e.g. 401: the last refused request to URL) or
`error: DESCRIPTION` and exits 1.
"""

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


async def call(url: str, tool: str, token: str | None, refusals: list[int]) -> str:
    headers = {"X-meinGPT-JWT": token} if token else {}
    hooks = {"response": [refusals_of(url, refusals)]}
    async with httpx2.AsyncClient(headers=headers, event_hooks=hooks) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            result = await client.call_tool(tool, {})
            if result.is_error:
                raise RuntimeError(f"tool {tool} failed")
            return "".join(block.text for block in result.content if block.type == "text")


def refusals_of(url: str, refusals: list[int]):
    """A response hook that records the status of every refused request to
    `url`: mcp 2.x reports a refused MCP request as a JSON-RPC error without
    its HTTP status, so the status is read off the wire."""

    async def record(response: httpx2.Response) -> None:
        if str(response.request.url) == url and response.status_code >= 400:
            refusals.append(response.status_code)

    return record


def status_of(error: BaseException) -> int | None:
    """The HTTP status inside an error (or a group of them), if any."""
    if isinstance(error, httpx2.HTTPStatusError):
        return error.response.status_code
    for inner in getattr(error, "exceptions", ()):
        status = status_of(inner)
        if status is not None:
            return status
    for linked in (error.__cause__, error.__context__):
        if linked is not None:
            status = status_of(linked)
            if status is not None:
                return status
    return None


def report(session: Coroutine[Any, Any, str], refusals: list[int], timeout: float) -> int:
    """Runs `session`, prints `result: TEXT` or `error: STATUS` (the last
    refusal, else the status inside the error) and returns the exit code."""
    try:
        text = asyncio.run(asyncio.wait_for(session, timeout=timeout))
    except BaseException as error:  # noqa: BLE001 - reported to the caller
        status = refusals[-1] if refusals else status_of(error)
        # What ended the session, for a test that did not expect it.
        print(f"{type(error).__name__}: {error!r}", file=sys.stderr, flush=True)
        print(f"error: {status if status is not None else repr(error)}", flush=True)
        return 1
    print(f"result: {text}", flush=True)
    return 0


def main() -> int:
    url, tool = sys.argv[1], sys.argv[2]
    token = sys.argv[3] if len(sys.argv) > 3 else None
    refusals: list[int] = []
    return report(call(url, tool, token, refusals), refusals, timeout=20)


if __name__ == "__main__":
    sys.exit(main())
