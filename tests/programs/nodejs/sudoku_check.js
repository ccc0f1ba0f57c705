// Validate a filled-in Sudoku grid. Reports every conflict and exits with
// status 3 if there is any.
const grid = [
  "534678912",
  "672195348",
  "198342567",
  "859761423",
  "426853791",
  "713924856",
  "961537284",
  "287419635",
  "345286197",
].map((row) => [...row].map(Number));

function conflicts(cells) {
  const seen = new Set();
  const dups = [];
  for (const v of cells) {
    if (seen.has(v)) dups.push(v);
    seen.add(v);
  }
  return dups;
}

const problems = [];
for (let i = 0; i < 9; i++) {
  const row = grid[i];
  const col = grid.map((r) => r[i]);
  const box = [];
  for (let k = 0; k < 9; k++) {
    box.push(grid[3 * Math.floor(i / 3) + Math.floor(k / 3)][3 * (i % 3) + (k % 3)]);
  }
  for (const [name, cells] of [["row", row], ["column", col], ["box", box]]) {
    const dups = conflicts(cells);
    if (dups.length) problems.push(`${name} ${i + 1}: duplicate ${dups.join(", ")}`);
  }
}

if (problems.length === 0) {
  console.log("valid");
} else {
  problems.forEach((p) => console.log(p));
  console.log(`${problems.length} problem(s)`);
  process.exit(3);
}
