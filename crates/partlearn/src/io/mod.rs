//! Files: model files (safetensors tensors + JSON metadata), atomic writes, run folders.
