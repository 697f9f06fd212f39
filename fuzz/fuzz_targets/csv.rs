//! CSV reader: no panic, no allocation above the cap, in both float types.
#![no_main]
use libfuzzer_sys::fuzz_target;
use partlearn::data::csv::parse_csv;
use std::path::Path;

#[global_allocator]
static ALLOC: partlearn_fuzz::CappedAlloc = partlearn_fuzz::CappedAlloc;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let path = Path::new("fuzz.csv");
        let a = parse_csv::<f32>(text, path).map(|d| d.x().shape());
        let b = parse_csv::<f64>(text, path).map(|d| d.x().shape());
        assert_eq!(a.is_ok(), b.is_ok());
    }
});
