// Sieve of Eratosthenes.
function sieve(limit) {
  const composite = new Uint8Array(limit + 1);
  const primes = [];
  for (let i = 2; i <= limit; i++) {
    if (composite[i]) continue;
    primes.push(i);
    for (let j = i * i; j <= limit; j += i) composite[j] = 1;
  }
  return primes;
}

console.log(sieve(100).join(" "));
const big = sieve(2000000);
console.log(`primes below 2000000: ${big.length}`);
console.log(`sum of primes below 2000000: ${big.reduce((a, b) => a + b, 0)}`);
