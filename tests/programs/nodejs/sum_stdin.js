// Read whitespace-separated integers from standard input until EOF.
const fs = require("fs");

const numbers = fs
  .readFileSync(0, "utf8")
  .split(/\s+/)
  .filter((s) => s.length > 0)
  .map(Number);

const sum = numbers.reduce((a, b) => a + b, 0);
console.log(`count: ${numbers.length}`);
console.log(`sum: ${sum}`);
