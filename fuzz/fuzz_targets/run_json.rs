//! run.json: no panic, no allocation above the cap, for any bytes in a run folder's run.json.
#![no_main]
use libfuzzer_sys::fuzz_target;
use partlearn::io::record::RunRecord;

#[global_allocator]
static ALLOC: partlearn_fuzz::CappedAlloc = partlearn_fuzz::CappedAlloc;

fuzz_target!(|data: &[u8]| {
    let dir = partlearn_fuzz::scratch().join("run");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("run.json"), data).unwrap();
    let _ = RunRecord::read(&dir);
});
