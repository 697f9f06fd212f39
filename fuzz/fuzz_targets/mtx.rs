//! MatrixMarket `.mtx` reader (coordinate real / integer / pattern, general / symmetric): no
//! panic, no allocation above the cap; what parses writes back (`write_mtx`) to the same matrix.
#![no_main]
use libfuzzer_sys::fuzz_target;
use partlearn::data::mtx::{parse_mtx, read_mtx, write_mtx};
use std::path::Path;

#[global_allocator]
static ALLOC: partlearn_fuzz::CappedAlloc = partlearn_fuzz::CappedAlloc;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = parse_mtx::<f64>(data, Path::new("fuzz.mtx")) {
        let out = partlearn_fuzz::scratch().join("out.mtx");
        write_mtx(&out, &a).expect("a parsed matrix writes");
        let again = read_mtx::<f64>(&out).expect("a written .mtx reads back");
        assert_eq!((again.nrows(), again.ncols()), (a.nrows(), a.ncols()));
        assert_eq!(again.parts(), a.parts());
    }
});
