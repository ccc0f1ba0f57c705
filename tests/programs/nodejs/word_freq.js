// Word frequency from standard input, most frequent first, ties alphabetical.
const readline = require("readline");

const counts = new Map();
const rl = readline.createInterface({ input: process.stdin });

rl.on("line", (line) => {
  for (const word of line.toLowerCase().match(/[a-z]+/g) || []) {
    counts.set(word, (counts.get(word) || 0) + 1);
  }
});

rl.on("close", () => {
  const entries = [...counts.entries()].sort((a, b) =>
    b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)
  );
  for (const [word, n] of entries) {
    console.log(`${n} ${word}`);
  }
});
