//! MatrixMarket `.mtx` reader (coordinate real / integer / pattern, general / symmetric): no
//! panic, no allocation above the cap; what parses writes back (`write_mtx`) to the same matrix.
//! The row-block reader (`MtxRows`, with the smallest sort runs so that the external sort's
//! merge runs too) on the same bytes gives the whole reader's rows, pass after pass, or its
//! error (gzipped when the input starts with the gzip magic).
#![no_main]
use libfuzzer_sys::fuzz_target;
use partlearn::data::mtx::{parse_mtx, read_mtx, write_mtx, MtxRows, MtxRowsOptions};
use partlearn::data::rows::{RowBlock, RowSource};
use std::path::Path;

#[global_allocator]
static ALLOC: partlearn_fuzz::CappedAlloc = partlearn_fuzz::CappedAlloc;

/// Errors of the whole reader that the stream does not share: it never holds the entries or
/// the row pointers of the whole matrix.
fn memory_error(e: &str) -> bool {
    e.contains("memory") || e.contains("cannot be allocated")
}

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = parse_mtx::<f64>(data, Path::new("fuzz.mtx")) {
        let out = partlearn_fuzz::scratch().join("out.mtx");
        write_mtx(&out, &a).expect("a parsed matrix writes");
        let again = read_mtx::<f64>(&out).expect("a written .mtx reads back");
        assert_eq!((again.nrows(), again.ncols()), (a.nrows(), a.ncols()));
        assert_eq!(again.parts(), a.parts());
    }

    let dir = partlearn_fuzz::scratch();
    let name = if data.starts_with(&[0x1f, 0x8b]) { "in.mtx.gz" } else { "in.mtx" };
    let p = dir.join(name);
    std::fs::write(&p, data).expect("the scratch file writes");
    let whole = read_mtx::<f64>(&p);
    let opts = MtxRowsOptions {
        temp_dir: Some(dir.clone()),
        sort_memory: 0,
    };
    let mut src = match (MtxRows::open_with(&p, &opts), &whole) {
        (Err(e), Ok(a)) => {
            assert!(a.nrows() == 0 || a.ncols() == 0, "the stream refused a good file: {e}");
            return;
        }
        (Err(e), Err(w)) => {
            let w = w.to_string();
            if !memory_error(&w) {
                assert_eq!(e.to_string(), w, "the stream and the whole reader disagree");
            }
            return;
        }
        (Ok(_), Err(w)) => {
            assert!(memory_error(&w.to_string()), "the stream accepted what the whole reader refused: {w}");
            return;
        }
        (Ok(s), Ok(_)) => s,
    };
    let Ok(a) = whole else { return };
    let (n, m) = (RowSource::<f64>::n_rows(&src), RowSource::<f64>::n_cols(&src));
    assert_eq!((n, m), (a.nrows(), a.ncols()));
    let mut read = |start: usize, len: usize| match RowSource::<f64>::read(&mut src, start, len) {
        Ok(RowBlock::Sparse(x)) => {
            let want = a.select_rows(&(start..start + len).collect::<Vec<_>>()).expect("rows in range");
            assert_eq!(x, want, "rows {start}..{}", start + len);
        }
        Ok(RowBlock::Dense(_)) => panic!("an .mtx gives sparse blocks"),
        Err(e) => panic!("a checked file failed to stream: {e}"),
    };
    let b = 1 + data.len() % 5;
    if n <= 10_000 {
        for _ in 0..2 {
            for s in (0..n).step_by(b) {
                read(s, b.min(n - s));
            }
        }
    } else {
        read(0, b);
        read(n - 1, 1);
    }
    read(0, 1);
});
