// Sieve of Eratosthenes.
fn sieve(limit: usize) -> Vec<usize> {
    let mut is_prime = vec![true; limit + 1];
    is_prime[0] = false;
    if limit >= 1 {
        is_prime[1] = false;
    }
    let mut i = 2;
    while i * i <= limit {
        if is_prime[i] {
            let mut j = i * i;
            while j <= limit {
                is_prime[j] = false;
                j += i;
            }
        }
        i += 1;
    }
    is_prime
        .iter()
        .enumerate()
        .filter_map(|(n, &p)| if p { Some(n) } else { None })
        .collect()
}

fn main() {
    let small = sieve(100);
    let text: Vec<String> = small.iter().map(|p| p.to_string()).collect();
    println!("{}", text.join(" "));
    let big = sieve(1_000_000);
    println!("primes up to 10^6: {}", big.len());
    println!("largest: {}", big.last().unwrap());
}
