//! Auto-encoder training checkpoints: no panic, no allocation above the cap.
#![no_main]
use libfuzzer_sys::fuzz_target;
use partlearn::autoencoder::checkpoint_from_bytes;
use std::path::Path;

#[global_allocator]
static ALLOC: partlearn_fuzz::CappedAlloc = partlearn_fuzz::CappedAlloc;

fuzz_target!(|data: &[u8]| {
    let _ = checkpoint_from_bytes::<f32>(data, Path::new("checkpoint.safetensors"), 1, None);
});
