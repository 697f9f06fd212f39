//! The option mini-languages: the structuring element (`--se`), data specs' names and every enum
//! option parsed from text: no panic; a structuring element that parses fits in its bounding
//! square.
#![no_main]
use libfuzzer_sys::fuzz_target;
use partlearn::eval::morphology::StructuringElement;

#[global_allocator]
static ALLOC: partlearn_fuzz::CappedAlloc = partlearn_fuzz::CappedAlloc;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(se) = StructuringElement::parse(s) {
        let r = se.offsets().iter().map(|&(dy, dx)| dy.unsigned_abs().max(dx.unsigned_abs())).max().unwrap_or(0);
        assert!(se.offsets().len() <= (2 * r + 1) * (2 * r + 1));
        let again = StructuringElement::parse(se.name()).expect("a parsed element's name parses");
        assert_eq!(again.offsets(), se.offsets());
    }
    let _ = s.parse::<partlearn::nmf::Solver>();
    let _ = s.parse::<partlearn::nmf::InitMethod>();
    let _ = s.parse::<partlearn::autoencoder::Sparsity>();
    let _ = s.parse::<partlearn::autoencoder::Act>();
    let _ = s.parse::<partlearn::optim::Schedule>();
    let _ = partlearn::nmf::options::parse_beta_loss(s);
});
