//! IDX reader (raw and gzip, by the magic bytes): no panic, no allocation above the cap; what
//! parses writes back to the same array. The input is read as given and, gzip-compressed, again.
#![no_main]
use std::io::Write;

use libfuzzer_sys::fuzz_target;
use partlearn::data::idx::{idx_bytes, read_idx};

#[global_allocator]
static ALLOC: partlearn_fuzz::CappedAlloc = partlearn_fuzz::CappedAlloc;

fuzz_target!(|data: &[u8]| {
    let dir = partlearn_fuzz::scratch();
    let raw = dir.join("raw-idx");
    std::fs::write(&raw, data).unwrap();
    if let Ok(a) = read_idx(&raw) {
        let shape: Vec<u32> = a.shape.iter().map(|&d| d as u32).collect();
        std::fs::write(&raw, idx_bytes(&shape, &a.data)).unwrap();
        assert_eq!(read_idx(&raw).expect("a written IDX reads back"), a);
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    let gz_path = dir.join("idx.gz");
    std::fs::write(&gz_path, gz.finish().unwrap()).unwrap();
    let _ = read_idx(&gz_path);
});
