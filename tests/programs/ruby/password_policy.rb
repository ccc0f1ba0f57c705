# Check candidate passwords against a policy; exit status 3 if any fails.
RULES = {
  "at least 8 characters" => ->(pw) { pw.length >= 8 },
  "a lowercase letter" => ->(pw) { pw.match?(/[a-z]/) },
  "an uppercase letter" => ->(pw) { pw.match?(/[A-Z]/) },
  "a digit" => ->(pw) { pw.match?(/\d/) },
}.freeze

passwords = ["correct Horse 9", "short1A", "alllowercase99", "NoDigitsHere", "Tr0ub4dor&3"]

failures = 0
passwords.each do |pw|
  missing = RULES.reject { |_, check| check.call(pw) }.keys
  if missing.empty?
    puts "#{pw.inspect}: ok"
  else
    failures += 1
    puts "#{pw.inspect}: needs #{missing.join(', ')}"
  end
end

if failures > 0
  puts "#{failures} of #{passwords.size} passwords rejected"
  exit 3
end
