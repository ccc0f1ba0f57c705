-- Read integers from standard input until EOF.
local count, sum = 0, 0
for line in io.lines() do
  for word in line:gmatch("%S+") do
    sum = sum + math.tointeger(tonumber(word))
    count = count + 1
  end
end
print("count: " .. count)
print("sum: " .. sum)
