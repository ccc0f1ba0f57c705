puts "argc: #{ARGV.size}"
ARGV.each_with_index do |arg, i|
  puts "#{i + 1}: #{arg}"
end
