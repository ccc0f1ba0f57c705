sieve <- function(n) {
  is_prime <- rep(TRUE, n)
  is_prime[1] <- FALSE
  for (i in 2:floor(sqrt(n))) {
    if (is_prime[i]) {
      is_prime[seq(i * i, n, by = i)] <- FALSE
    }
  }
  which(is_prime)
}

p <- sieve(100)
print(p)
cat("number of primes below 10000:", length(sieve(10000)), fill = TRUE)
