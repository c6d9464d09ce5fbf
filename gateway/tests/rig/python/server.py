"""An MCP server built with the official Python SDK (MCPServer, Streamable HTTP)
that trusts meingpt-gateway's identity headers, as an app behind the gateway
would. It listens on 127.0.0.1 on a port the system picks and prints
`mcp server listening on http://127.0.0.1:PORT/mcp` once it accepts
connections.
"""

import asyncio
import socket
import sys

import uvicorn
from mcp.server.mcpserver import Context, MCPServer

mcp = MCPServer("rig")


def _header(ctx: Context, name: str) -> str:
    request = ctx.request_context.request
    if request is None:
        return ""
    return request.headers.get(name, "")


@mcp.tool()
def whoami(ctx: Context) -> str:
    """The user the gateway vouched for (X-Auth-Request-User)."""
    return _header(ctx, "x-auth-request-user")


@mcp.tool()
def role(ctx: Context) -> str:
    """The user's role as the gateway passed it (X-meinGPT-Role)."""
    return _header(ctx, "x-meingpt-role")


@mcp.tool()
def token_seen(ctx: Context) -> str:
    """Whether the meinGPT token reached this server ("yes" or "no")."""
    return "yes" if _header(ctx, "x-meingpt-jwt") else "no"


async def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(mcp.streamable_http_app(stateless_http=True), log_level="warning")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if serving.done():
            serving.result()
            sys.exit("the MCP server stopped before it started")
        await asyncio.sleep(0.02)
    print(f"mcp server listening on http://127.0.0.1:{port}/mcp", flush=True)
    await serving


if __name__ == "__main__":
    asyncio.run(main())
