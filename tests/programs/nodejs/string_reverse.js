// Reverse strings (by code point, so astral characters survive) and test
// palindromes.
function reverse(s) {
  return [...s].reverse().join("");
}

function isPalindrome(s) {
  const t = s.toLowerCase().replace(/[^a-z0-9]/g, "");
  return t === reverse(t);
}

const samples = ["Hello, World!", "racecar", "A man, a plan, a canal: Panama", "asdf", "ab😀cd"];
for (const s of samples) {
  console.log(`${reverse(s)}${isPalindrome(s) ? " (palindrome)" : ""}`);
}

module.exports = { reverse, isPalindrome };
