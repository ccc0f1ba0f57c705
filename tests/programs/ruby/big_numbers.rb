# Integers grow without bound in Ruby.
fib = Enumerator.new do |y|
  a, b = 0, 1
  loop do
    y << a
    a, b = b, a + b
  end
end

puts "first 15: #{fib.take(15).join(', ')}"
puts "fib(100) = #{fib.lazy.drop(100).first}"
puts "50! = #{(1..50).reduce(:*)}"
puts "2**100 = #{2**100}"
puts "digits in 3**1000: #{(3**1000).digits.size}"
