// Fibonacci numbers in u128, stopping at the first overflow.
fn main() {
    let (mut a, mut b): (u128, u128) = (0, 1);
    let mut n = 0;
    loop {
        if n % 40 == 0 {
            println!("F({}) = {}", n, a);
        }
        match a.checked_add(b) {
            Some(c) => {
                a = b;
                b = c;
                n += 1;
            }
            None => break,
        }
    }
    println!("largest that fits in u128: F({}) = {}", n + 1, b);
    println!("u128::MAX = {}", u128::MAX);
}
