-- Fibonacci numbers: iterative, and recursive with memoization.
local function fib_iter(n)
  local a, b = 0, 1
  for _ = 1, n do
    a, b = b, a + b
  end
  return a
end

local memo = {}
local function fib_memo(n)
  if n < 2 then return n end
  if memo[n] then return memo[n] end
  local v = fib_memo(n - 1) + fib_memo(n - 2)
  memo[n] = v
  return v
end

local first = {}
for i = 0, 14 do
  first[#first + 1] = fib_iter(i)
end
print(table.concat(first, ", "))
print(string.format("fib(90) = %d", fib_iter(90)))
print("memoized agrees: " .. tostring(fib_memo(90) == fib_iter(90)))
print(string.format("golden ratio ~ %.10f", fib_iter(41) / fib_iter(40)))
