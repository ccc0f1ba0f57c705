// Fibonacci numbers and factorials with BigInt.
function fib(n) {
  let a = 0n, b = 1n;
  for (let i = 0; i < n; i++) [a, b] = [b, a + b];
  return a;
}

function factorial(n) {
  let r = 1n;
  for (let i = 2n; i <= BigInt(n); i++) r *= i;
  return r;
}

for (const n of [10, 100, 200]) {
  console.log(`fib(${n}) = ${fib(n)}`);
}
console.log(`25! = ${factorial(25)}`);
console.log(`2^100 = ${2n ** 100n}`);
console.log(`Number.MAX_SAFE_INTEGER + 2 = ${BigInt(Number.MAX_SAFE_INTEGER) + 2n}`);
