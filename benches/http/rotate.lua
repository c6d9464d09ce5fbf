-- wrk script: GET /me, each request with the next of the tokens in $TOKENS_FILE.
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do
  if #line > 0 then tokens[#tokens + 1] = line end
end
local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", "/me", { ["X-meinGPT-JWT"] = tokens[i] })
end
