use std::io::{self, Read};

// Read whitespace-separated integers from standard input until EOF.
fn main() {
    let mut input = String::new();
    io::stdin().read_to_string(&mut input).expect("read stdin");
    let numbers: Vec<i64> = input
        .split_whitespace()
        .map(|tok| tok.parse().expect("not a number"))
        .collect();
    println!("count: {}", numbers.len());
    println!("sum: {}", numbers.iter().sum::<i64>());
}
