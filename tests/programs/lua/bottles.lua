-- 99 Bottles of Beer, shortened to 4 bottles.
local function bottles(n)
  if n == 0 then
    return "no more bottles"
  elseif n == 1 then
    return "1 bottle"
  else
    return n .. " bottles"
  end
end

for n = 4, 1, -1 do
  print(bottles(n) .. " of beer on the wall, " .. bottles(n) .. " of beer.")
  print("Take one down and pass it around, " .. bottles(n - 1) .. " of beer on the wall.")
  print()
end
print("No more bottles of beer on the wall, no more bottles of beer.")
print("Go to the store and buy some more, 4 bottles of beer on the wall.")
