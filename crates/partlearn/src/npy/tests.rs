use super::*;
use std::path::PathBuf;

fn p() -> PathBuf {
    PathBuf::from("t.npy")
}

fn round_trip(shape: &[usize], data: NpyDataRef<'_>) -> NpyArray {
    let bytes = npy_bytes(shape, data);
    let start = if bytes[6] == 1 {
        10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize
    } else {
        12 + u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize
    };
    assert_eq!(start % 64, 0);
    assert_eq!(bytes[start - 1], b'\n');
    let a = parse_npy(&bytes, &p()).unwrap();
    assert_eq!(a.shape, shape);
    assert_eq!(a.data.as_ref().descr(), data.descr());
    a
}

#[test]
fn round_trips_every_dtype_and_rank() {
    let shapes: [&[usize]; 6] = [&[], &[5], &[0], &[2, 3], &[2, 0], &[2, 3, 4]];
    for shape in shapes {
        let n: usize = shape.iter().product();
        let f32s: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
        let f64s: Vec<f64> = (0..n).map(|i| i as f64 / 3.0).collect();
        let u8s: Vec<u8> = (0..n).map(|i| (i * 37 % 256) as u8).collect();
        let i32s: Vec<i32> = (0..n).map(|i| i as i32 - 7).collect();
        let i64s: Vec<i64> = (0..n).map(|i| (i as i64 - 7) << 40).collect();
        let u32s: Vec<u32> = (0..n).map(|i| u32::MAX - i as u32).collect();
        assert_eq!(
            round_trip(shape, NpyDataRef::F32(&f32s)).data,
            NpyData::F32(f32s.clone())
        );
        assert_eq!(
            round_trip(shape, NpyDataRef::F64(&f64s)).data,
            NpyData::F64(f64s.clone())
        );
        assert_eq!(
            round_trip(shape, NpyDataRef::U8(&u8s)).data,
            NpyData::U8(u8s.clone())
        );
        assert_eq!(
            round_trip(shape, NpyDataRef::I32(&i32s)).data,
            NpyData::I32(i32s.clone())
        );
        assert_eq!(
            round_trip(shape, NpyDataRef::I64(&i64s)).data,
            NpyData::I64(i64s.clone())
        );
        assert_eq!(
            round_trip(shape, NpyDataRef::U32(&u32s)).data,
            NpyData::U32(u32s.clone())
        );
    }
}

/// `np.save(f, np.arange(6, dtype='<f4').reshape(2, 3))` with numpy 1.x.
fn numpy_arange6() -> Vec<u8> {
    let mut b = b"\x93NUMPY\x01\x00\x76\x00".to_vec();
    b.extend_from_slice(b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }");
    b.extend_from_slice(&[b' '; 58]);
    b.push(b'\n');
    assert_eq!(b.len(), 128);
    b.extend_from_slice(&[
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x40, 0x40, 0x00,
        0x00, 0x80, 0x40, 0x00, 0x00, 0xa0, 0x40,
    ]);
    b
}

#[test]
fn reads_and_writes_numpys_bytes() {
    let bytes = numpy_arange6();
    let a = parse_npy(&bytes, &p()).unwrap();
    assert_eq!(a.shape, vec![2, 3]);
    assert_eq!(a.data, NpyData::F32(vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]));
    assert_eq!(a.to_f64_vec(), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    assert_eq!(a.to_real::<f64>()[5], 5.0);
    assert_eq!(a.len(), 6);
    let vals = [0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0];
    assert_eq!(npy_bytes(&[2, 3], NpyDataRef::F32(&vals)), bytes);
}

fn with_header(version: u8, dict: &str, data: &[u8]) -> Vec<u8> {
    let mut b = MAGIC.to_vec();
    b.extend_from_slice(&[version, 0]);
    let h = format!("{dict}\n");
    if version == 1 {
        b.extend_from_slice(&(h.len() as u16).to_le_bytes());
    } else {
        b.extend_from_slice(&(h.len() as u32).to_le_bytes());
    }
    b.extend_from_slice(h.as_bytes());
    b.extend_from_slice(data);
    b
}

#[test]
fn header_variants_and_versions() {
    let data: Vec<u8> = [1.5f64, 2.5].iter().flat_map(|x| x.to_le_bytes()).collect();
    for v in [1u8, 2, 3] {
        for dict in [
            "{'shape': (2,), 'fortran_order': False, 'descr': '<f8'}",
            "{\"descr\": \"<f8\", \"shape\": (2L,), \"fortran_order\": False,}",
            "{ 'fortran_order' : False , 'descr':'<f8','shape':( 1 , 2 ) }   ",
        ] {
            let a = parse_npy(&with_header(v, dict, &data), &p()).unwrap();
            assert_eq!(a.to_f64_vec(), vec![1.5, 2.5], "{dict}");
        }
    }
    let s = parse_npy(
        &with_header(
            1,
            "{'descr': '<i8', 'fortran_order': False, 'shape': ()}",
            &7i64.to_le_bytes(),
        ),
        &p(),
    )
    .unwrap();
    assert_eq!((s.shape.len(), s.to_f64_vec()), (0, vec![7.0]));
    for v in [0u8, 4] {
        let e = parse_npy(&with_header(v, "{}", &[]), &p()).unwrap_err();
        assert!(e.to_string().contains("version"), "{e}");
    }
}

#[test]
fn rejects_bad_files() {
    // Bad magic.
    let mut b = numpy_arange6();
    b[1] = b'X';
    assert!(matches!(parse_npy(&b, &p()), Err(Error::BadFormat { .. })));
    assert!(matches!(parse_npy(b"PK", &p()), Err(Error::BadFormat { .. })));
    // Truncated data, and truncated header.
    let b = numpy_arange6();
    match parse_npy(&b[..b.len() - 1], &p()) {
        Err(Error::Truncated {
            declared: 24,
            actual: 23,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // A cut header is named as such, not as missing data.
    let e = parse_npy(&b[..50], &p()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Truncated {
                part: "header",
                actual: 50,
                ..
            }
        ) && e.to_string().contains("its header needs"),
        "{e}"
    );
    assert!(matches!(parse_npy(&b[..9], &p()), Err(Error::Truncated { .. })));
    // Trailing bytes.
    let mut long = b.clone();
    long.push(0);
    let e = parse_npy(&long, &p()).unwrap_err();
    assert!(
        matches!(e, Error::BadFormat { .. }) && e.to_string().contains("1 unexpected bytes"),
        "{e}"
    );
    // Fortran order.
    let e = parse_npy(
        &with_header(
            1,
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
            &b[128..],
        ),
        &p(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("np.ascontiguousarray"), "{e}");
    // Big-endian and unsupported dtypes.
    for descr in [">f8", "<f2", "|b1", "<c16", "|i1"] {
        let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (3,), }}");
        let e = parse_npy(&with_header(1, &dict, &[0; 24]), &p()).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(e, Error::BadFormat { .. }) && msg.contains(descr) && msg.contains("<f4, <f8"),
            "{msg}"
        );
    }
    // Malformed dicts.
    for dict in [
        "{'descr': '<f4', 'shape': (2, 3), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }",
        "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (6,), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'extra': 1}",
        "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (6,)}",
        "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (6,)} junk",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (6,)",
        "{'descr: '<f4'",
    ] {
        let e = parse_npy(&with_header(1, dict, &b[128..]), &p()).unwrap_err();
        assert!(matches!(e, Error::BadFormat { .. }), "{dict}: {e}");
    }
}

#[test]
fn bad_shape_entries_are_quoted_whole() {
    for (shape, entry) in [("(-5, 4)", "'-5'"), ("(3, 2.5)", "'2.5'"), ("( -1 ,)", "'-1'")] {
        let dict = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}");
        let e = parse_npy(&with_header(1, &dict, &[]), &p()).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(e, Error::BadFormat { .. }) && msg.contains(&format!("shape entry {entry} is not")),
            "{shape}: {msg}"
        );
    }
}

#[test]
fn forged_shapes_do_not_allocate() {
    // 10^15 × 10^6 f8 elements: overflows u64 bytes.
    let e = parse_npy(
        &with_header(
            1,
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000000, 1000000), }",
            &[0; 16],
        ),
        &p(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::BadFormat { .. }), "{e}");
    // 10^15 elements: fits u64 but not the file.
    let e = parse_npy(
        &with_header(
            1,
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000000,), }",
            &[0; 16],
        ),
        &p(),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Truncated {
                declared: 8_000_000_000_000_000,
                actual: 16,
                ..
            }
        ),
        "{e}"
    );
    // A header length larger than the file.
    let mut b = MAGIC.to_vec();
    b.extend_from_slice(&[2, 0, 0xff, 0xff, 0xff, 0xff, b'{']);
    assert!(matches!(parse_npy(&b, &p()), Err(Error::Truncated { .. })));
    // A shape entry beyond usize.
    let e = parse_npy(
        &with_header(
            1,
            "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999,), }",
            &[],
        ),
        &p(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::BadFormat { .. }), "{e}");
}

#[test]
fn reads_files_from_disk() {
    let dir = crate::data::test_dir("npy");
    let path = dir.path().join("a.npy");
    let vals: Vec<f64> = (0..200_000).map(|i| i as f64).collect();
    std::fs::write(&path, npy_bytes(&[1000, 200], NpyDataRef::F64(&vals))).unwrap();
    let a = read_npy(&path).unwrap();
    assert_eq!(a.shape, vec![1000, 200]);
    assert_eq!(a.to_f64_vec(), vals);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 8]).unwrap();
    assert!(matches!(read_npy(&path), Err(Error::Truncated { .. })));
    let forged = with_header(
        1,
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000000, 1000), }",
        &[0; 8],
    );
    std::fs::write(&path, forged).unwrap();
    assert!(read_npy(&path).is_err());
    assert!(matches!(
        read_npy(&dir.path().join("missing.npy")),
        Err(Error::Io { .. })
    ));
}

#[test]
fn labels_conversion() {
    let a = |data| NpyArray { shape: vec![3], data };
    assert_eq!(
        a(NpyData::I64(vec![0, 2, 1])).to_labels(&p()).unwrap(),
        vec![0, 2, 1]
    );
    assert_eq!(
        a(NpyData::F32(vec![0.0, 2.0, 9.0])).to_labels(&p()).unwrap(),
        vec![0, 2, 9]
    );
    assert_eq!(
        a(NpyData::U8(vec![3, 4, 5])).to_labels(&p()).unwrap(),
        vec![3, 4, 5]
    );
    assert!(a(NpyData::I32(vec![0, -1, 1])).to_labels(&p()).is_err());
    assert!(a(NpyData::F64(vec![0.0, 0.5, 1.0])).to_labels(&p()).is_err());
    assert!(a(NpyData::F64(vec![0.0, f64::NAN, 1.0])).to_labels(&p()).is_err());
    assert!(a(NpyData::I64(vec![0, 1 << 40, 1])).to_labels(&p()).is_err());
}

#[test]
fn messages_quote_what_is_there() {
    // fortran_order: 'yes' is quoted (it was `found ''`).
    let bytes = with_header(
        1,
        "{'descr': '<f4', 'fortran_order': 'yes', 'shape': (1,), }",
        &[0; 4],
    );
    let e = parse_npy(&bytes, &p()).unwrap_err().to_string();
    assert!(e.contains("found 'yes'"), "{e}");
    // A label of 10^12 is a class number too large, not "not a non-negative integer".
    let labels = parse_npy(&npy_bytes(&[2], NpyDataRef::I64(&[0, 1_000_000_000_000])), &p()).unwrap();
    let e = labels.to_labels(&p()).unwrap_err().to_string();
    assert!(
        e.contains("too large a class number") && e.contains("10,000"),
        "{e}"
    );
    let labels = parse_npy(&npy_bytes(&[1], NpyDataRef::F64(&[-1e-300])), &p()).unwrap();
    let e = labels.to_labels(&p()).unwrap_err().to_string();
    assert!(e.contains("-1e-300") && e.len() < 200, "{e}");
    // A negative data entry of -1e-300 is printed short (it had 303 digits).
    let e = crate::Error::NegativeEntry {
        sample: 0,
        feature: 1,
        value: -1e-300,
    }
    .to_string();
    assert!(e.starts_with("negative entry -1e-300 at sample 0"), "{e}");
}

#[test]
fn rows_are_read_by_offset_and_match_the_whole_file() {
    let dir = std::env::temp_dir().join(format!("partlearn-npy-rows-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("x.npy");
    let vals: Vec<f32> = (0..7 * 3).map(|v| v as f32).collect();
    std::fs::write(&path, npy_bytes(&[7, 3], NpyDataRef::F32(&vals))).unwrap();
    assert_eq!(npy_shape(&path).unwrap(), vec![7, 3]);
    let a = read_npy_rows(&path, 2..5).unwrap();
    assert_eq!(a.shape, vec![3, 3]);
    assert_eq!(a.data, NpyData::F32(vals[6..15].to_vec()));
    assert_eq!(read_npy_rows(&path, 7..7).unwrap().shape, vec![0, 3]);
    let e = read_npy_rows(&path, 5..9).unwrap_err().to_string();
    assert!(e.contains("7 rows"), "{e}");
    // An N-D array (images) is read by its first axis: rows 1..2 of a 2×2×2 array.
    let v: Vec<f32> = (0..8).map(|v| v as f32).collect();
    std::fs::write(&path, npy_bytes(&[2, 2, 2], NpyDataRef::F32(&v))).unwrap();
    let a = read_npy_rows(&path, 1..2).unwrap();
    assert_eq!(a.shape, vec![1, 2, 2]);
    assert_eq!(a.data, NpyData::F32(v[4..8].to_vec()));
    // A 1-D array has no rows to read.
    std::fs::write(&path, npy_bytes(&[8], NpyDataRef::F32(&v))).unwrap();
    let e = read_npy_rows(&path, 0..1).unwrap_err().to_string();
    assert!(e.contains("at least 2 dimensions"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
