# Word frequency from standard input, most frequent first, ties alphabetical.
counts = Hash.new(0)
STDIN.each_line do |line|
  line.downcase.scan(/[a-z]+/) { |word| counts[word] += 1 }
end

counts.sort_by { |word, n| [-n, word] }.each do |word, n|
  puts "#{n} #{word}"
end
