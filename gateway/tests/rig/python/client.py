"""Calls one tool of an MCP server with the official Python SDK's Streamable
HTTP client, sending the meinGPT token as meinGPT does (`X-meinGPT-JWT`).

    client.py URL TOOL [TOKEN]

Prints `result: TEXT` and exits 0, or prints `error: STATUS` (the HTTP status
that ended the session, e.g. 401) or `error: DESCRIPTION` and exits 1.
"""

import asyncio
import sys

import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client


async def call(url: str, tool: str, token: str | None) -> str:
    headers = {"X-meinGPT-JWT": token} if token else {}
    async with streamablehttp_client(url, headers=headers) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            result = await session.call_tool(tool, {})
            if result.isError:
                raise RuntimeError(f"tool {tool} failed")
            return "".join(block.text for block in result.content if block.type == "text")


def status_of(error: BaseException) -> int | None:
    """The HTTP status inside an error (or a group of them), if any."""
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code
    for inner in getattr(error, "exceptions", ()):
        status = status_of(inner)
        if status is not None:
            return status
    if error.__cause__ is not None:
        return status_of(error.__cause__)
    return None


def main() -> int:
    url, tool = sys.argv[1], sys.argv[2]
    token = sys.argv[3] if len(sys.argv) > 3 else None
    try:
        text = asyncio.run(asyncio.wait_for(call(url, tool, token), timeout=20))
    except BaseException as error:  # noqa: BLE001 - reported to the caller
        status = status_of(error)
        print(f"error: {status if status is not None else repr(error)}", flush=True)
        return 1
    print(f"result: {text}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
