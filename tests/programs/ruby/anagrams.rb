# Group words that are anagrams of each other (Rosetta Code "Anagrams",
# with a built-in word list instead of a dictionary file).
words = %w[listen silent enlist google inlets banana tinsel
           elbow below bowel stone tones notes onset act cat tac]

groups = words.group_by { |w| w.chars.sort.join }
largest = groups.values.map(&:size).max

groups.values.select { |g| g.size > 1 }.sort_by { |g| [-g.size, g.first] }.each do |g|
  puts "#{g.size}: #{g.sort.join(' ')}"
end
puts "largest group has #{largest} words"
groups
