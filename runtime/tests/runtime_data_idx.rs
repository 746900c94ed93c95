//! The IDX loader on files built here: plain and gzipped round trips, the MNIST directory layout, and hostile files refused typed before allocating.
// Test helpers unwrap: a failure there is a broken fixture, reported by the panic.
#![allow(clippy::unwrap_used)]

use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use nodeflow::{
    idx_dataset, load_idx_dir, load_idx_pair, read_idx_images, read_idx_labels, DatasetError,
    IdxError, IdxImages, IdxLimits,
};

/// An IDX u8 file: magic `00 00 08 rank`, big-endian dims, then `body`.
fn idx(dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(body);
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// `count` images of 2×3 pixels (image i's pixels are 10 i + 0..6) and labels `i mod 10`.
fn sample(count: u32) -> (Vec<u8>, Vec<u8>) {
    let pixels: Vec<u8> = (0..count)
        .flat_map(|i| (0..6).map(move |p| (10 * i + p) as u8))
        .collect();
    let labels: Vec<u8> = (0..count).map(|i| (i % 10) as u8).collect();
    (idx(&[count, 2, 3], &pixels), idx(&[count], &labels))
}

/// A fresh directory under Cargo's per-test scratch space.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("runtime_data_idx")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn images(bytes: &[u8]) -> Result<IdxImages, IdxError> {
    read_idx_images(bytes, &IdxLimits::default())
}

fn labels(bytes: &[u8]) -> Result<Vec<u8>, IdxError> {
    read_idx_labels(bytes, &IdxLimits::default())
}

#[test]
fn plain_and_gzipped_files_read_the_same() {
    let (img, lab) = sample(4);
    for (img, lab) in [(img.clone(), lab.clone()), (gzip(&img), gzip(&lab))] {
        let i = images(&img).unwrap();
        assert_eq!((i.count(), i.rows(), i.cols()), (4, 2, 3));
        assert_eq!(&i.pixels()[6..12], &[10, 11, 12, 13, 14, 15]);
        let l = labels(&lab).unwrap();
        assert_eq!(l, vec![0, 1, 2, 3]);
        let d = idx_dataset(i, l, 10).unwrap();
        assert_eq!((d.len(), d.feature_dim(), d.classes()), (4, 6, 10));
        let (x, y) = d.row(3).unwrap();
        assert_eq!((x, y), (&[30.0, 31.0, 32.0, 33.0, 34.0, 35.0][..], 3));
    }
}

#[test]
fn a_reader_handing_out_one_byte_at_a_time_still_parses() {
    struct Trickle(Cursor<Vec<u8>>);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(1);
            self.0.read(&mut buf[..n])
        }
    }
    let (img, _) = sample(3);
    for bytes in [img.clone(), gzip(&img)] {
        let i = read_idx_images(Trickle(Cursor::new(bytes)), &IdxLimits::default()).unwrap();
        assert_eq!(i.pixels().len(), 18);
    }
}

#[test]
fn a_directory_loads_in_the_mnist_layout_plain_or_gzipped() {
    let dir = scratch("layout");
    let (train_img, train_lab) = sample(12);
    let (test_img, test_lab) = sample(5);
    std::fs::write(dir.join("train-images-idx3-ubyte"), &train_img).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte.gz"), gzip(&train_lab)).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), gzip(&test_img)).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), &test_lab).unwrap();
    let splits = load_idx_dir(&dir).unwrap();
    assert_eq!((splits.train.len(), splits.test.len()), (12, 5));
    assert_eq!(splits.train.labels()[11], 1);
    assert_eq!(splits.test.row(4).unwrap().0[0], 40.0);
    assert!(splits
        .train
        .features()
        .iter()
        .all(|&p| (0.0..=255.0).contains(&p)));

    std::fs::remove_file(dir.join("t10k-labels-idx1-ubyte")).unwrap();
    assert!(matches!(
        load_idx_dir(&dir),
        Err(IdxError::Missing {
            name: "t10k-labels-idx1-ubyte",
            ..
        })
    ));
    assert!(matches!(
        load_idx_pair(&dir.join("nope"), &dir.join("nope"), &IdxLimits::default()),
        Err(IdxError::Io { .. })
    ));
}

#[test]
fn wrong_magic_type_and_rank_are_refused() {
    let (img, lab) = sample(2);
    let mut bad = img.clone();
    bad[0] = 1;
    assert!(matches!(
        images(&bad),
        Err(IdxError::Magic {
            found: [1, 0, 8, 3],
            ..
        })
    ));
    let mut bad = img.clone();
    bad[2] = 0x0D; // float
    assert!(matches!(
        images(&bad),
        Err(IdxError::TypeCode { found: 0x0D, .. })
    ));
    assert!(matches!(
        images(&lab),
        Err(IdxError::Rank {
            expected: 3,
            found: 1,
            ..
        })
    ));
    assert!(matches!(
        labels(&img),
        Err(IdxError::Rank {
            expected: 1,
            found: 3,
            ..
        })
    ));
    assert!(matches!(
        images(b"not an idx file"),
        Err(IdxError::Magic { .. })
    ));
}

#[test]
fn huge_or_overflowing_dims_are_refused_from_the_header_alone() {
    // 2³² − 1 cubed overflows usize; 60 000 × 1 000 × 1 000 is 6·10¹⁰ (past
    // the 10⁸ cap). Both come in 16-byte files with no body.
    for dims in [[u32::MAX; 3], [60_000, 1_000, 1_000]] {
        let err = images(&idx(&dims, &[])).unwrap_err();
        assert!(
            matches!(&err, IdxError::TooLarge { dims: d, cap: 100_000_000, .. } if d == &dims),
            "{err}"
        );
    }
    let tight = IdxLimits { max_elements: 17 };
    let (img, _) = sample(3); // 18 pixels
    assert!(matches!(
        read_idx_images(&img[..], &tight),
        Err(IdxError::TooLarge { .. })
    ));
    assert!(read_idx_images(&img[..], &IdxLimits { max_elements: 18 }).is_ok());
}

#[test]
fn a_big_declared_body_in_a_short_file_is_refused_as_truncated() {
    // Declares 99 M pixels (within the cap) but holds 10.
    let err = images(&idx(&[99, 1_000, 1_000], &[7; 10])).unwrap_err();
    assert!(
        matches!(
            err,
            IdxError::Truncated {
                expected: 99_000_016,
                found: 26,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn truncated_headers_and_bodies_are_refused() {
    let (img, lab) = sample(3);
    for cut in [0, 3, 4, 10, 15] {
        assert!(
            matches!(images(&img[..cut]), Err(IdxError::Truncated { expected: 16, found, .. }) if found == cut),
            "cut at {cut}"
        );
    }
    assert!(matches!(
        images(&img[..img.len() - 1]),
        Err(IdxError::Truncated {
            expected: 34,
            found: 33,
            ..
        })
    ));
    assert!(matches!(
        labels(&lab[..lab.len() - 1]),
        Err(IdxError::Truncated { .. })
    ));
    // A cut gzip stream fails as truncated data or as a corrupt stream.
    let gz = gzip(&img);
    for cut in [1, 5, gz.len() / 2, gz.len() - 1] {
        let err = images(&gz[..cut]).unwrap_err();
        assert!(
            matches!(err, IdxError::Truncated { .. } | IdxError::Read { .. }),
            "cut at {cut}: {err}"
        );
    }
}

#[test]
fn trailing_bytes_are_refused_plain_and_gzipped() {
    let (mut img, _) = sample(2);
    img.push(0);
    assert!(matches!(
        images(&img),
        Err(IdxError::TrailingBytes { expected: 28, .. })
    ));
    assert!(matches!(
        images(&gzip(&img)),
        Err(IdxError::TrailingBytes { .. })
    ));
}

#[test]
fn a_gzip_bomb_inflates_only_one_byte_past_the_declared_body() {
    // 16 MiB of zeros after a header declaring 16 bytes: about 16 KB
    // compressed. The reader stops one byte past the declared body.
    let mut raw = idx(&[1, 4, 4], &[]);
    raw.resize(raw.len() + (16 << 20), 0);
    let bomb = gzip(&raw);
    assert!(bomb.len() < 1 << 20);
    assert!(matches!(
        images(&bomb),
        Err(IdxError::TrailingBytes { expected: 32, .. })
    ));
    // Declaring it all, under a small cap, is refused from the header.
    let mut declared = idx(&[1024, 1024, 16], &[]);
    declared.resize(16 + (16 << 20), 0);
    assert!(matches!(
        read_idx_images(
            &gzip(&declared)[..],
            &IdxLimits {
                max_elements: 1 << 20
            }
        ),
        Err(IdxError::TooLarge { .. })
    ));
}

#[test]
fn a_corrupt_gzip_stream_is_a_read_error() {
    let (img, _) = sample(2);
    let mut gz = gzip(&img);
    let mid = gz.len() / 2;
    gz[mid] ^= 0xff;
    let last = gz.len() - 5; // inside the CRC-32 trailer
    let mut crc = gzip(&img);
    crc[last] ^= 0xff;
    for bad in [gz, crc] {
        assert!(images(&bad).is_err());
    }
    let mut header = gzip(&img);
    header[2] = 7; // compression method other than deflate
    assert!(matches!(images(&header), Err(IdxError::Read { .. })));
}

#[test]
fn images_and_labels_must_agree() {
    let (img, _) = sample(4);
    let (_, lab) = sample(3);
    let err = idx_dataset(images(&img).unwrap(), labels(&lab).unwrap(), 10).unwrap_err();
    assert!(
        matches!(
            err,
            IdxError::CountMismatch {
                images: 4,
                labels: 3
            }
        ),
        "{err}"
    );
    let (img, lab) = sample(4);
    let err = idx_dataset(images(&img).unwrap(), labels(&lab).unwrap(), 3).unwrap_err();
    assert!(
        matches!(
            err,
            IdxError::Dataset(DatasetError::LabelOutOfRange {
                row: 3,
                label: 3,
                classes: 3
            })
        ),
        "{err}"
    );
    let empty = idx(&[2, 0, 5], &[]);
    let err = idx_dataset(images(&empty).unwrap(), vec![0, 0], 10).unwrap_err();
    assert!(
        matches!(err, IdxError::Dataset(DatasetError::ZeroFeatureDim)),
        "{err}"
    );
    let none = idx(&[0, 28, 28], &[]);
    assert!(idx_dataset(images(&none).unwrap(), Vec::new(), 10)
        .unwrap()
        .is_empty());
}
