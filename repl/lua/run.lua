-- Sorna's Lua driver: every run is loaded into one environment, so its globals stay
-- for the next; driven by the runner over fds 3 (runs in) and 4 (their ends out); see
-- "Runner <-> driver" in docs/PROTOCOL.md. As in Lua's REPL, an expression's values
-- are printed.
local input = assert(io.open("/dev/fd/3", "rb"))
local output = assert(io.open("/dev/fd/4", "wb"))
-- Line-buffered both ways, as on a terminal: glibc then flushes the output (a prompt)
-- when a read of stdin begins.
io.stdout:setvbuf("line")
io.stdin:setvbuf("line")
local env = setmetatable({}, {__index = _G})

local function emit(kind, ...)
  local fields, header = {...}, {kind}
  for i, field in ipairs(fields) do header[i + 1] = #field end
  output:write(table.concat(header, " "), "\n", table.concat(fields))
  output:flush()
end

local function report(message, trace, before)
  message = tostring(message)
  local name = message:find("interrupted!", 1, true) and "Interrupt"
               or (before and "SyntaxError" or "Error")
  emit("error", name, message, trace or message, before and "1" or "0")
end

while true do
  local header = input:read("l")
  if not header then os.exit(0) end
  local size = tonumber(header:match("^run (%d+)$"))
  local code = size > 0 and input:read(size) or ""
  local chunk = load("return " .. code, "=input", "t", env)
  local err
  if not chunk then chunk, err = load(code, "=input", "t", env) end
  if not chunk then
    report(err, err, true)
  else
    local results = table.pack(xpcall(chunk, function(e)
      return {e, debug.traceback(tostring(e), 2)}
    end))
    if not results[1] then
      report(results[2][1], results[2][2], false)
    elseif results.n > 1 then
      local shown = {}
      for i = 2, results.n do shown[#shown + 1] = tostring(results[i]) end
      io.stdout:flush()
      emit("result", table.concat(shown, "\t"))
    end
  end
  io.stdout:flush()
  io.stderr:flush()
  emit("done")
end
