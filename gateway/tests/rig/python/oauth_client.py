"""Signs in to an MCP server the way a standard MCP client does, with the
official Python SDK's OAuth support (`OAuthClientProvider`), and calls one
tool. Its only knowledge of the server is the URL: it learns where to sign
in from the server's `401` (RFC 9728 protected resource metadata), finds
the authorization server there, gets a token, and calls the tool.

    oauth_client.py URL TOOL client-credentials CLIENT_ID CLIENT_SECRET ISSUER [TOKEN]
    oauth_client.py URL TOOL authorization-code [TOKEN]

`client-credentials` uses the SDK's `ClientCredentialsOAuthProvider` with a
pre-registered client; `authorization-code` uses `OAuthClientProvider` with
dynamic client registration and PKCE, its browser step played by handlers
that follow the authorization redirect as a user who approves at once.
`TOKEN`, when given, is an access token the client already holds.

Prints `result: TEXT` and exits 0, or `error: STATUS` (the HTTP status
that ended the session, e.g. 403) or `error: DESCRIPTION` and exits 1.
"""

import sys
from urllib.parse import parse_qs, urlparse

import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

# The refused requests recorded and the outcome printed as client.py does.
from client import refusals_of, report

REDIRECT_URI = "http://127.0.0.1:9/callback"


class MemoryStorage:
    """Tokens and client information in memory, as the SDK's examples keep them."""

    def __init__(self, token: str | None) -> None:
        self.tokens = OAuthToken(access_token=token) if token else None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class Browser:
    """The user's browser: opens the authorization URL and, as the user
    approves at once, hands the redirect's code back to the client."""

    def __init__(self) -> None:
        self.result: AuthorizationCodeResult | None = None

    async def open(self, authorization_url: str) -> None:
        async with httpx2.AsyncClient(follow_redirects=False) as browser:
            response = await browser.get(authorization_url)
        location = response.headers.get("location")
        if response.status_code != 302 or not location:
            raise RuntimeError(f"authorization answered {response.status_code}: {response.text}")
        if not location.startswith(REDIRECT_URI):
            raise RuntimeError(f"redirected elsewhere: {location}")
        query = parse_qs(urlparse(location).query)
        if "error" in query:
            raise RuntimeError(f"authorization refused: {query['error'][0]}")
        self.result = AuthorizationCodeResult(
            code=query["code"][0],
            state=query.get("state", [None])[0],
            iss=query.get("iss", [None])[0],
        )

    async def callback(self) -> AuthorizationCodeResult:
        if self.result is None:
            raise RuntimeError("no authorization redirect was followed")
        return self.result


def provider(url: str, args: list[str]) -> httpx2.Auth:
    flow, rest = args[0], args[1:]
    if flow == "client-credentials":
        client_id, client_secret, issuer = rest[:3]
        token = rest[3] if len(rest) > 3 else None
        return ClientCredentialsOAuthProvider(
            server_url=url,
            storage=MemoryStorage(token),
            client_id=client_id,
            client_secret=client_secret,
            issuer=issuer,
        )
    if flow == "authorization-code":
        token = rest[0] if rest else None
        browser = Browser()
        return OAuthClientProvider(
            server_url=url,
            client_metadata=OAuthClientMetadata(
                client_name="meingpt-auth test client",
                redirect_uris=[REDIRECT_URI],
                grant_types=["authorization_code"],
                token_endpoint_auth_method="none",
            ),
            storage=MemoryStorage(token),
            redirect_handler=browser.open,
            callback_handler=browser.callback,
        )
    raise SystemExit(f"unknown flow {flow!r}")


async def call(url: str, tool: str, auth: httpx2.Auth, refusals: list[int]) -> str:
    hooks = {"response": [refusals_of(url, refusals)]}
    async with httpx2.AsyncClient(auth=auth, event_hooks=hooks) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            result = await client.call_tool(tool, {})
            if result.is_error:
                raise RuntimeError(f"tool {tool} failed")
            return "".join(block.text for block in result.content if block.type == "text")


def main() -> int:
    url, tool = sys.argv[1], sys.argv[2]
    auth = provider(url, sys.argv[3:])
    refusals: list[int] = []
    return report(call(url, tool, auth, refusals), refusals, timeout=30)


if __name__ == "__main__":
    sys.exit(main())
