-- Command-line arguments are in the global table `arg`.
print("argc: " .. #arg)
for i, a in ipairs(arg) do
  print(i .. ": " .. a)
end
