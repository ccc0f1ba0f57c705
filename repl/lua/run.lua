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

local KEYWORDS = {"and", "break", "do", "else", "elseif", "end", "false", "for",
                  "function", "goto", "if", "in", "local", "nil", "not", "or", "repeat",
                  "return", "then", "true", "until", "while"}

-- Completion (between runs): the session's globals and Lua's, and the keys of the
-- tables a dotted path leads to (read with rawget and next: no metamethod runs).
local function complete(token)
  local head, prefix = token:match("^(.-)([%w_]*)$")
  local found, sources = {}, {}
  if head == "" then
    sources = {env, _G}
    for _, word in ipairs(KEYWORDS) do found[word] = true end
  else
    local value = env
    for name in head:sub(1, -2):gmatch("[^.:]+") do
      local next_value = rawget(value, name)
      if next_value == nil and value == env then next_value = rawget(_G, name) end
      if type(next_value) == "string" then next_value = string end
      if type(next_value) ~= "table" then return {} end
      value = next_value
    end
    sources = {value}
  end
  for _, source in ipairs(sources) do
    for key in next, source do
      if type(key) == "string" and key:match("^[%a_][%w_]*$") then found[key] = true end
    end
  end
  local matches = {}
  for name in pairs(found) do
    if name:sub(1, #prefix) == prefix then matches[#matches + 1] = head .. name end
  end
  table.sort(matches)
  return {table.unpack(matches, 1, math.min(#matches, 500))}
end

-- Inspection (between runs): the value a dotted path leads to, its type, a function's
-- parameters, a table's keys (no metamethod runs).
local function describe(token)
  local value = env
  for name in token:gmatch("[^.:]+") do
    if type(value) ~= "table" then return "" end
    local next_value = rawget(value, name)
    if next_value == nil and value == env then next_value = rawget(_G, name) end
    value = next_value
  end
  if value == nil or value == env then return "" end
  local kind = type(value)
  if kind == "function" then
    local info, names = debug.getinfo(value, "Su"), {}
    for i = 1, info.nparams do names[i] = debug.getlocal(value, i) end
    if info.isvararg then names[#names + 1] = "..." end
    return token .. ": function (" .. table.concat(names, ", ") .. ")"
           .. (info.what == "C" and " [C]" or "")
  elseif kind == "table" then
    local keys = {}
    for key in next, value do
      if #keys < 30 then keys[#keys + 1] = tostring(key) end
    end
    table.sort(keys)
    return token .. ": table\nkeys: " .. table.concat(keys, ", ")
  end
  local shown = kind == "string" and value:sub(1, 4000) or tostring(value)
  return token .. ": " .. kind .. "\n" .. shown
end

while true do
  local header = input:read("l")
  if not header then os.exit(0) end
  local kind, size = header:match("^(%a+) (%d+)$")
  size = tonumber(size)
  local code = size > 0 and input:read(size) or ""
  if kind == "complete" then
    local ok, matches = pcall(complete, code)
    emit("matches", table.concat(ok and matches or {}, "\n"))
    goto continue
  elseif kind == "inspect" then
    local ok, text = pcall(describe, code)
    emit("found", ok and text or "")
    goto continue
  end
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
  ::continue::
end
