-- Word frequency from standard input, most frequent first, ties alphabetical.
local counts = {}
local text = io.read("a")
for word in text:lower():gmatch("%a+") do
  counts[word] = (counts[word] or 0) + 1
end

local words = {}
for word in pairs(counts) do
  words[#words + 1] = word
end
table.sort(words, function(a, b)
  if counts[a] ~= counts[b] then
    return counts[a] > counts[b]
  end
  return a < b
end)

for _, word in ipairs(words) do
  print(counts[word] .. " " .. word)
end
