use std::env;

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    println!("argc: {}", args.len());
    for (i, arg) in args.iter().enumerate() {
        println!("{}: {}", i + 1, arg);
    }
}
