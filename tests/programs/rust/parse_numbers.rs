use std::process;

// Parse a list of strings as i32; report the first one that fails and exit
// with status 3.
fn parse_all(inputs: &[&str]) -> Result<Vec<i32>, String> {
    let mut out = Vec::new();
    for s in inputs {
        match s.trim().parse::<i32>() {
            Ok(n) => out.push(n),
            Err(e) => return Err(format!("cannot parse {:?}: {}", s, e)),
        }
    }
    Ok(out)
}

fn main() {
    let good = ["12", " -7 ", "+40", "2147483647"];
    match parse_all(&good) {
        Ok(v) => println!("parsed {:?}, sum {}", v, v.iter().map(|&x| x as i64).sum::<i64>()),
        Err(e) => println!("error: {}", e),
    }

    let bad = ["1", "2", "x3", "4"];
    match parse_all(&bad) {
        Ok(v) => println!("parsed {:?}", v),
        Err(e) => {
            println!("error: {}", e);
            println!("too big: {}", "99999999999".parse::<i32>().unwrap_err());
            process::exit(3);
        }
    }
}
