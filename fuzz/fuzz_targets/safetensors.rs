//! safetensors reader and the model files on it: no panic, no allocation above the cap; what
//! parses writes back to the same tensors and metadata; any model kind (NMF, auto-encoder, deep)
//! is read from the bytes and, when it loads, encodes a sample without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;
use partlearn::faer::Mat;
use partlearn::io::{parse_safetensors, safetensors_bytes};
use std::path::Path;

#[global_allocator]
static ALLOC: partlearn_fuzz::CappedAlloc = partlearn_fuzz::CappedAlloc;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("model.safetensors");
    if let Ok((tensors, meta)) = parse_safetensors(data, path) {
        let bytes = safetensors_bytes(&tensors, &meta).expect("parsed tensors write back");
        let (again, meta_again) = parse_safetensors(&bytes, path).expect("written tensors read back");
        assert_eq!(meta_again, meta);
        assert_eq!(again.len(), tensors.len());
    }
    if let Ok(loaded) = partlearn::protocol::model_from_bytes::<f32>(data, path) {
        let m = loaded.model.n_features();
        if m > 0 && m <= 1 << 16 {
            let x = Mat::<f32>::from_fn(2, m, |i, j| ((i + j) % 3) as f32);
            let _ = loaded.model.encode(x.as_ref(), 1);
        }
    }
});
