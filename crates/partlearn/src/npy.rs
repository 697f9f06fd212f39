//! NPY files (numpy's `.npy` format, version 1.0/2.0/3.0): reading u8/f32/f64 C-order matrices and
//! writing f32/f64 matrices, so numpy users can open everything partlearn writes.
