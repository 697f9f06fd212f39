//! NPY reader: no panic, no allocation above the cap; what parses writes back to the same array.
#![no_main]
use libfuzzer_sys::fuzz_target;
use partlearn::npy::{npy_bytes, parse_npy};
use std::path::Path;

#[global_allocator]
static ALLOC: partlearn_fuzz::CappedAlloc = partlearn_fuzz::CappedAlloc;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.npy");
    if let Ok(a) = parse_npy(data, path) {
        let again = parse_npy(&npy_bytes(&a.shape, a.data.as_ref()), path).expect("a written NPY reads back");
        assert_eq!(again.shape, a.shape);
        assert!(again.data == a.data || a.data.to_f64_vec().iter().any(|v| v.is_nan()));
    }
});
