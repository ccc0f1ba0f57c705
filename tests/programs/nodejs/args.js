const args = process.argv.slice(2);
console.log(`argc: ${args.length}`);
args.forEach((arg, i) => console.log(`${i + 1}: ${arg}`));
