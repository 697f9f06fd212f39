//! scipy `.npz` reader (zip of NPY members; csr, csc, coo) and its row stream (`NpzRows`, CSR):
//! no panic, no allocation above the cap; what parses writes back (`write_npz`) to the same
//! matrix, and a stream read to its end in blocks gives the rows the whole read gives.
#![no_main]
use libfuzzer_sys::fuzz_target;
use partlearn::data::npz::{read_npz, write_npz, NpzRows};
use partlearn::data::rows::{RowBlock, RowSource};

#[global_allocator]
static ALLOC: partlearn_fuzz::CappedAlloc = partlearn_fuzz::CappedAlloc;

fuzz_target!(|data: &[u8]| {
    let dir = partlearn_fuzz::scratch();
    let path = dir.join("in.npz");
    std::fs::write(&path, data).unwrap();
    let whole = read_npz::<f64>(&path).ok();
    if let Some(a) = &whole {
        let out = dir.join("out.npz");
        write_npz(&out, &a).expect("a parsed matrix writes");
        let again = read_npz::<f64>(&out).expect("a written .npz reads back");
        assert_eq!((again.nrows(), again.ncols()), (a.nrows(), a.ncols()));
        assert_eq!(again.parts(), a.parts());
    }
    let Ok(mut rows) = NpzRows::open(&path) else {
        return;
    };
    let n = RowSource::<f64>::n_rows(&rows);
    let mut start = 0;
    while start < n {
        let len = 3.min(n - start);
        match RowSource::<f64>::read(&mut rows, start, len) {
            Ok(RowBlock::Sparse(b)) => {
                if let Some(a) = &whole {
                    let want = a.select_rows(&(start..start + len).collect::<Vec<_>>()).expect("rows in range");
                    assert_eq!(b.parts(), want.parts(), "rows {start}..");
                }
            }
            Ok(RowBlock::Dense(_)) => panic!("an .npz streams sparse blocks"),
            Err(_) => return,
        }
        start += len;
        if start > 4096 {
            return;
        }
    }
});
