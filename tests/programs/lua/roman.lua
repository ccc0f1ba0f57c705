-- Roman numerals: encode, then decode back. Exits with status 3 when a
-- number has no Roman numeral.
local numerals = {
  {1000, "M"}, {900, "CM"}, {500, "D"}, {400, "CD"}, {100, "C"}, {90, "XC"},
  {50, "L"}, {40, "XL"}, {10, "X"}, {9, "IX"}, {5, "V"}, {4, "IV"}, {1, "I"},
}

local function encode(n)
  local out = {}
  for _, pair in ipairs(numerals) do
    local value, letters = pair[1], pair[2]
    while n >= value do
      out[#out + 1] = letters
      n = n - value
    end
  end
  return table.concat(out)
end

local values = {I = 1, V = 5, X = 10, L = 50, C = 100, D = 500, M = 1000}

local function decode(s)
  local total = 0
  for i = 1, #s do
    local v, nxt = values[s:sub(i, i)], values[s:sub(i + 1, i + 1)]
    if nxt and nxt > v then total = total - v else total = total + v end
  end
  return total
end

for _, n in ipairs({1990, 2008, 1666, 3999, 14, 0}) do
  if n < 1 or n > 3999 then
    print(n .. ": no Roman numeral")
    os.exit(3)
  end
  local r = encode(n)
  print(string.format("%4d = %-12s -> %d", n, r, decode(r)))
end
