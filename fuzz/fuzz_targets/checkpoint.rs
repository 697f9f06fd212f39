//! Training checkpoints (auto-encoder, NMF, Neural NMF): no panic, no allocation above the cap;
//! an NMF checkpoint that reads writes back to the same state.
#![no_main]
use libfuzzer_sys::fuzz_target;
use partlearn::autoencoder::checkpoint_from_bytes;
use partlearn::deep::neural::NeuralCheckpoint;
use partlearn::nmf::NmfCheckpoint;
use std::path::Path;

#[global_allocator]
static ALLOC: partlearn_fuzz::CappedAlloc = partlearn_fuzz::CappedAlloc;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("checkpoint.safetensors");
    let _ = checkpoint_from_bytes::<f32>(data, path, 1, None);
    let _ = NeuralCheckpoint::<f32>::from_bytes(data, path);
    if let Ok(ck) = NmfCheckpoint::<f32>::from_bytes(data, path) {
        let bytes = ck.to_bytes().expect("a checkpoint that reads writes");
        let again = NmfCheckpoint::<f32>::from_bytes(&bytes, path).expect("written checkpoints read");
        assert_eq!(again.to_bytes().expect("writes again"), bytes);
    }
});
