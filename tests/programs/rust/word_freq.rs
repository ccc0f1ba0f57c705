use std::collections::HashMap;
use std::io::{self, BufRead};

// Word frequency from standard input, most frequent first, ties alphabetical.
fn main() {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for line in io::stdin().lock().lines() {
        let line = line.expect("read line").to_lowercase();
        for word in line.split(|c: char| !c.is_ascii_alphabetic()) {
            if !word.is_empty() {
                *counts.entry(word.to_string()).or_insert(0) += 1;
            }
        }
    }
    let mut entries: Vec<(String, usize)> = counts.into_iter().collect();
    entries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    for (word, n) in entries {
        println!("{} {}", n, word);
    }
}
