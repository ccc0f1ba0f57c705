# Read integers from standard input until EOF.
numbers = $stdin.read.split.map(&:to_i)
puts "count: #{numbers.size}"
puts "sum: #{numbers.sum}"
