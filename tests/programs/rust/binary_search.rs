// Binary search by hand, checked against slice::binary_search.
fn search(v: &[i32], key: i32) -> Option<usize> {
    let (mut lo, mut hi) = (0usize, v.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if v[mid] == key {
            return Some(mid);
        } else if v[mid] < key {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    None
}

fn main() {
    let mut v = vec![42, 7, 19, 3, 88, 61, 25, 14, 70, 1];
    v.sort_unstable();
    println!("{:?}", v);
    for key in [1, 25, 88, 50, 0, 100] {
        let by_hand = search(&v, key);
        let std_result = v.binary_search(&key);
        match std_result {
            Ok(i) => println!("{:>3}: found at {} (by hand {:?})", key, i, by_hand),
            Err(i) => println!("{:>3}: absent, would insert at {} (by hand {:?})", key, i, by_hand),
        }
    }
}
