//! scipy `.npz` reader (zip of NPY members; csr, csc, coo): no panic, no allocation above the
//! cap; what parses writes back (`write_npz`) to the same matrix.
#![no_main]
use libfuzzer_sys::fuzz_target;
use partlearn::data::npz::{read_npz, write_npz};

#[global_allocator]
static ALLOC: partlearn_fuzz::CappedAlloc = partlearn_fuzz::CappedAlloc;

fuzz_target!(|data: &[u8]| {
    let dir = partlearn_fuzz::scratch();
    let path = dir.join("in.npz");
    std::fs::write(&path, data).unwrap();
    if let Ok(a) = read_npz::<f64>(&path) {
        let out = dir.join("out.npz");
        write_npz(&out, &a).expect("a parsed matrix writes");
        let again = read_npz::<f64>(&out).expect("a written .npz reads back");
        assert_eq!((again.nrows(), again.ncols()), (a.nrows(), a.ncols()));
        assert_eq!(again.parts(), a.parts());
    }
});
